package node

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/store"
)

// originName is a single path segment: rtsp://node/<name>/<path>.
var originName = regexp.MustCompile(`^[a-z0-9._-]+$`)

// minTokenLen is the shortest admin.token accepted.
const minTokenLen = 16

// Validate checks every key and returns all problems at once, each naming
// its key and saying how to fix it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf(key+": "+format, args...))
	}
	if c.Version != ConfigVersion {
		bad("version", "%d is not supported; write `version: %d`", c.Version, ConfigVersion)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "empty; set a writable directory, e.g. /var/lib/rtspmesh")
	}
	c.validateRTSP(bad)
	c.validateLimits(bad)
	c.validateAuth(bad)
	c.validateOrigins(bad)
	if c.Cache.MaxBytes < 0 {
		bad("cache.max_bytes", "%d is negative; write a size such as \"50GiB\", or 0 for no limit", c.Cache.MaxBytes)
	}
	positive(bad, "cache.live_window", c.Cache.LiveWindow, "2m")
	if c.Cache.Memory < 0 {
		bad("cache.memory", "%d is negative; write a size such as \"32MiB\", or 0 to keep no segment in memory", c.Cache.Memory)
	}
	if c.MemoryLimit < 0 && c.MemoryLimit != MemoryLimitAuto {
		bad("memory_limit", "%d is negative; write auto, a size such as \"96MiB\", or 0 to leave the Go runtime's limit", int64(c.MemoryLimit))
	}
	if c.Cache.MinFree < store.MinMinFree {
		bad("cache.min_free", "%d is below the least headroom the store can keep (8MiB); write a size such as \"512MiB\"", c.Cache.MinFree)
	}
	if c.Cache.LiveLinger < 0 {
		bad("cache.live_linger", "%s is negative; write e.g. \"10s\", or \"0s\" to stop at once", c.Cache.LiveLinger)
	}
	if c.Cache.LiveReconnect < 0 {
		bad("cache.live_reconnect", "%s is negative; write e.g. \"30s\", or \"0s\" to end live streams at once when their origin is lost", c.Cache.LiveReconnect)
	}
	positive(bad, "origin_timeout", c.OriginTimeout, "10s")
	positive(bad, "cache.retention_interval", c.Cache.RetentionInterval, "5m")
	if c.Cache.FreeTarget < 0 {
		bad("cache.free_target", "%d is negative; write a size such as \"20GiB\", or 0 for none", c.Cache.FreeTarget)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not a level; write debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not a format; write text or json", c.Log.Format)
	}
	c.validateMesh(bad)
	c.validateAdmin(bad)
	c.validateFills(bad)
	return errors.Join(errs...)
}

type complain func(key, format string, args ...any)

func positive(bad complain, key string, d Duration, example string) {
	if d <= 0 {
		bad(key, "%s must be positive; write e.g. %q", d, example)
	}
}

// checkHostPort reports whether s is host:port with a numeric port.
func checkHostPort(s string) (host string, port int, ok bool) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, false
	}
	return h, n, true
}

func (c *Config) validateRTSP(bad complain) {
	r := c.RTSP
	if _, _, ok := checkHostPort(r.Listen); !ok {
		bad("rtsp.listen", "%q is not host:port; write e.g. \":8554\"", r.Listen)
	}
	seen := map[string]bool{}
	for _, t := range r.Transports {
		switch t {
		case "tcp", "udp":
		default:
			bad("rtsp.transports", "%q is not a transport; write tcp and/or udp", t)
		}
		if seen[t] {
			bad("rtsp.transports", "%q is listed twice", t)
		}
		seen[t] = true
	}
	if len(r.Transports) == 0 {
		bad("rtsp.transports", "empty; write [tcp, udp] or [tcp]")
	}
	switch {
	case r.UDPRTPListen == "" && r.UDPRTCPListen == "":
		// UDP disabled: players that ask for it are refused (461).
	case r.UDPRTCPListen == "" && strings.HasSuffix(r.UDPRTPListen, ":0"):
		// Port 0: the server picks a free even/odd pair itself.
	case r.UDPRTPListen == "" || r.UDPRTCPListen == "":
		bad("rtsp.udp_rtp_listen", "rtsp.udp_rtp_listen and rtsp.udp_rtcp_listen are set together (e.g. \":8000\" and \":8001\") or both left empty to disable UDP")
	default:
		_, rtp, ok1 := checkHostPort(r.UDPRTPListen)
		_, rtcp, ok2 := checkHostPort(r.UDPRTCPListen)
		if !ok1 {
			bad("rtsp.udp_rtp_listen", "%q is not host:port; write e.g. \":8000\"", r.UDPRTPListen)
		}
		if !ok2 {
			bad("rtsp.udp_rtcp_listen", "%q is not host:port; write e.g. \":8001\"", r.UDPRTCPListen)
		}
		if ok1 && ok2 && (rtp%2 != 0 || rtcp != rtp+1) {
			bad("rtsp.udp_rtcp_listen", "RTP port %d and RTCP port %d: RTP must be even and RTCP the next port, e.g. \":8000\" and \":8001\"", rtp, rtcp)
		}
	}
}

func (c *Config) validateOrigins(bad complain) {
	names := map[string]bool{}
	for i, o := range c.Origins {
		key := fmt.Sprintf("origins[%d]", i)
		switch {
		case o.Name == "." || o.Name == ".." || !originName.MatchString(o.Name):
			bad(key+".name", "%q is not a path segment; use lower-case letters, digits, '.', '_' and '-', e.g. \"cams\"", o.Name)
		case names[o.Name]:
			bad(key+".name", "%q is used by another origin; names must be unique", o.Name)
		}
		names[o.Name] = true
		key = fmt.Sprintf("origins[%d] (%s)", i, o.Name)
		u, err := url.Parse(o.URL)
		if err != nil || u.Opaque != "" || u.Host == "" || (u.Scheme != "rtsp" && u.Scheme != "rtsps") {
			bad(key+".url", "%q is not an rtsp:// or rtsps:// URL with a host; write e.g. \"rtsp://media.example.com:554/vod\"", RedactURL(o.URL))
			continue
		}
		if u.Fragment != "" {
			bad(key+".url", "has a #fragment; remove it")
		}
		if _, err := CanonicalKey(o.URL); err != nil {
			bad(key+".url", "%v", err)
		}
		if u.User != nil && (o.Username != "" || o.Password != "") {
			bad(key+".username", "credentials are given both in the URL and in username/password; keep one")
		}
		if o.Password != "" && o.Username == "" {
			bad(key+".password", "set without a username; add username")
		}
		o.validateFreshness(bad, key)
		validateMaxSessions(bad, key, o)
		validateSpeed(bad, key, o)
	}
}

func checkCacheControl(bad complain, key, v string) {
	for d := range strings.SplitSeq(v, ",") {
		name, arg, hasArg := strings.Cut(strings.TrimSpace(strings.ToLower(d)), "=")
		switch name {
		case "no-cache", "no-store", "private", "public", "no-transform", "must-revalidate":
			if !hasArg {
				continue
			}
		case "max-age":
			if n, err := strconv.Atoi(arg); hasArg && err == nil && n >= 0 {
				continue
			}
		}
		bad(key, "%q is not a Cache-Control directive; use no-cache, no-store, private, public, no-transform, must-revalidate or max-age=<seconds>", strings.TrimSpace(d))
	}
}

func (c *Config) validateMesh(bad complain) {
	m := c.Mesh
	if m.RateLimit < 0 {
		bad("mesh.rate_limit", "%s is negative; write e.g. \"20Mbit/s\", or 0 (the default) for no cap", m.RateLimit)
	}
	if !m.Enabled {
		return
	}
	if len(m.Listen) == 0 {
		bad("mesh.listen", "empty; write e.g. [\"/ip4/0.0.0.0/tcp/4001\"], or set mesh.enabled: false")
	}
	for _, a := range m.Listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			bad("mesh.listen", "%q is not a multiaddr; write e.g. \"/ip4/0.0.0.0/tcp/4001\"", a)
		}
	}
	if m.PSKFile != "" && len(m.effectiveListen()) == 0 && len(m.Listen) > 0 {
		bad("mesh.listen", "has no TCP address, and mesh.psk_file makes the mesh TCP-only; add e.g. \"/ip4/0.0.0.0/tcp/4001\"")
	}
	for _, a := range m.Bootstrap {
		addr, err := ma.NewMultiaddr(a)
		if err == nil {
			_, err = peer.AddrInfoFromP2pAddr(addr)
		}
		if err != nil {
			bad("mesh.bootstrap", "%q is not a peer multiaddr; copy one that `rtspmesh node` printed, e.g. \"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW…\"", a)
		}
	}
	if m.PSKFile != "" {
		if _, err := os.Stat(m.PSKFile); err != nil {
			bad("mesh.psk_file", "%v; create one with `rtspmesh keygen %s` and copy it to every node", err, m.PSKFile)
		}
	}
	for _, id := range m.AllowPeers {
		if _, err := peer.Decode(id); err != nil {
			bad("mesh.allow_peers", "%q is not a peer id; copy the id that `rtspmesh node` printed (12D3KooW…)", id)
		}
	}
	positive(bad, "mesh.find_timeout", m.FindTimeout, "300ms")
	if m.ProviderTTL < Duration(time.Minute) {
		bad("mesh.provider_ttl", "%s is too short; write at least \"1m\" (e.g. \"1h\"), the same on every node", m.ProviderTTL)
	}
	if m.LiveMaxHops < 1 || m.LiveMaxHops > 16 {
		bad("mesh.live_max_hops", "%d is out of range; write a number from 1 to 16 (default 3)", m.LiveMaxHops)
	}
	validateFillerReach(bad, m)
	for _, id := range m.TrustedSigners {
		if _, err := peer.Decode(id); err != nil {
			bad("mesh.trusted_signers", "%q is not a peer id; copy the id that `rtspmesh node` printed (12D3KooW…)", id)
		}
	}
	positive(bad, "mesh.answer_timeout", m.AnswerTimeout, "2s")
	positive(bad, "mesh.distrust_for", m.DistrustFor, "10m")
	for i, o := range c.Origins {
		switch o.PeerAccess {
		case "", PeerAccessTrusted, PeerAccessAll:
		default:
			bad(fmt.Sprintf("origins[%d].peer_access", i), "%q is not a peer access; write %q or %q", o.PeerAccess, PeerAccessTrusted, PeerAccessAll)
		}
	}
}

// Posture says why a mesh that anyone may join would start, or refuses it
// (DESIGN §8): listening on a non-loopback address with no psk_file and no
// allow_peers needs mesh.open: true. It returns open when the node starts
// as an open mesh on purpose (then it warns).
func (m MeshConfig) Posture() (open bool, err error) {
	if !m.Enabled || m.PSKFile != "" || len(m.AllowPeers) > 0 || mesh.LoopbackOnly(m.Listen) {
		return false, nil
	}
	if m.Open {
		return true, nil
	}
	return false, fmt.Errorf("mesh.listen %v reaches beyond this host, and with no mesh.psk_file and no mesh.allow_peers anyone could join the mesh and copy what this node holds: "+
		"make the mesh private (run `rtspmesh keygen /var/lib/rtspmesh/mesh.psk`, copy the file to every node and set mesh.psk_file to it), "+
		"or list the nodes in mesh.allow_peers, or listen on loopback only, or set mesh.open: true to run an open mesh on purpose", m.Listen)
}

// effectiveListen is the listen list the mesh will use: all of Listen, or
// what mesh.PrivateListen keeps when PSKFile is set (Validate uses it to
// refuse a private mesh left with no address).
func (m MeshConfig) effectiveListen() []string {
	if m.PSKFile == "" {
		return m.Listen
	}
	keep, _ := mesh.PrivateListen(m.Listen)
	return keep
}

func (c *Config) validateAdmin(bad complain) {
	a := c.Admin
	if a.Listen == "" {
		return
	}
	host, _, ok := checkHostPort(a.Listen)
	if !ok {
		bad("admin.listen", "%q is not host:port; write e.g. \"127.0.0.1:9554\", or leave it empty to disable the admin API", a.Listen)
		return
	}
	if a.Token != "" && len(a.Token) < minTokenLen {
		bad("admin.token", "too short (%d characters); use at least %d random characters, e.g. from `openssl rand -hex 16`", len(a.Token), minTokenLen)
	}
	for _, h := range a.Hosts {
		name := h
		if hh, _, err := net.SplitHostPort(h); err == nil {
			name = hh
		}
		if name == "" || strings.ContainsAny(h, "/@ ") {
			bad("admin.hosts", "%q is not a host name or host:port; write e.g. \"branch-node.example.com\"", h)
		}
	}
	if !isLoopback(host) && a.Token == "" {
		bad("admin.token", "required because admin.listen %q is not a loopback address; set a token (e.g. `openssl rand -hex 16`) or listen on 127.0.0.1", a.Listen)
	}
}

// isLoopback reports whether host (from host:port) accepts only local
// connections. An empty host listens on every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
