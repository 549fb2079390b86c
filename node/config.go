package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/node/fill"
	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/store"
)

// ConfigVersion is the only config file format this build reads.
const ConfigVersion = 1

// Config is a node's whole configuration. It is built in layers: Defaults,
// then a YAML file (LoadFile), then RTSPMESH_* environment variables
// (ApplyEnv), then command-line flags (Set), and finally Validate.
// configs/node.yaml documents every key.
type Config struct {
	Version       int         `yaml:"version"`
	DataDir       string      `yaml:"data_dir"`
	RTSP          RTSPConfig  `yaml:"rtsp"`
	Origins       []Origin    `yaml:"origins"`
	Cache         CacheConfig `yaml:"cache"`
	OriginTimeout Duration    `yaml:"origin_timeout"`
	Log           LogConfig   `yaml:"log"`
	Mesh          MeshConfig  `yaml:"mesh"`
	Admin         AdminConfig `yaml:"admin"`
	Fills         FillsConfig `yaml:"fills"` // config_limits.go
	// MemoryLimit is the Go runtime's soft memory limit for the process
	// that runs the node (ApplyMemoryLimit): auto (MemoryLimitAuto, the
	// default) follows the sessions open; a size; 0 leaves the runtime's:
	// none, or GOMEMLIMIT's.
	MemoryLimit MemoryLimit `yaml:"memory_limit"`

	autoMemory bool // ApplyMemoryLimit applied auto: Run follows the sessions
}

// RTSPConfig is the player-facing RTSP server.
type RTSPConfig struct {
	Listen        string   `yaml:"listen"`          // TCP host:port, default ":8554"
	UDPRTPListen  string   `yaml:"udp_rtp_listen"`  // default ":8000"; empty (with udp_rtcp_listen) disables UDP
	UDPRTCPListen string   `yaml:"udp_rtcp_listen"` // default ":8001" (RTP port + 1)
	Transports    []string `yaml:"transports"`      // "tcp", "udp"; default both

	// Connection limits (config_edge.go; defaults in rtspedge.Limits).
	RequestTimeout           Duration `yaml:"request_timeout"`             // a request completes within this of its first byte; default 10s
	IdleTimeout              Duration `yaml:"idle_timeout"`                // close a connection outside PLAY idle this long; default 60s
	MaxConnections           int      `yaml:"max_connections"`             // default 1000
	MaxConnectionsPerAddress int      `yaml:"max_connections_per_address"` // default 100
	MaxSessions              int      `yaml:"max_sessions"`                // default 1000
	MaxSessionsPerAddress    int      `yaml:"max_sessions_per_address"`    // default 100

	// Player authentication (config_edge.go): off while Auth.Users is empty.
	Auth PlayerAuthConfig `yaml:"auth"`
}

// Origin is a configured upstream RTSP server: rtsp://node/<Name>/<path>
// plays <URL>/<path>. Credentials go in the URL's user info or in
// Username/Password, never both; they are never logged or put in keys.
type Origin struct {
	Name     string `yaml:"name"`
	URL      string `yaml:"url"`
	Username string `yaml:"username,omitempty"`
	Password string `yaml:"password,omitempty"`
	// Freshness policy (config_fresh.go, DESIGN.md §10).
	// CacheControlOverride replaces the origin's Cache-Control header.
	CacheControlOverride string    `yaml:"cache_control_override,omitempty"`
	MaxAge               *Duration `yaml:"max_age,omitempty"`            // fresh this long without origin headers; default 10m
	UseOriginHeaders     *bool     `yaml:"use_origin_headers,omitempty"` // the origin's Cache-Control/Expires decide; default true
	StaleIfError         *bool     `yaml:"stale_if_error,omitempty"`     // serve stale when the origin is down; default true
	MaxUnplayed          *Duration `yaml:"max_unplayed,omitempty"`       // evict recordings not played this long; default 720h, 0 off

	// Players are the rtsp.auth users who may play this origin; empty:
	// every user (config_edge.go).
	Players []string `yaml:"players,omitempty"`

	// PeerAccess says which peers this node serves the origin's recordings
	// to: "trusted" (trusted signers only: the default for an origin with
	// credentials) or "all" (every peer that connects: the default for one
	// without).
	PeerAccess string `yaml:"peer_access,omitempty"`
	// What the origin may make the node do (config_limits.go).

	// Redirects of DESCRIBE: "same-origin" (default: followed within the
	// URL's scheme, host and port, never elsewhere) or "refuse".
	Redirects string `yaml:"redirects,omitempty"`
	// AllowBasicOverPlain lets Basic credentials go over plain rtsp://
	// (in clear text). Default false: only Digest is answered over rtsp://.
	AllowBasicOverPlain bool `yaml:"allow_basic_over_plain,omitempty"`
	// MaxBitrate bounds what one stream stores: bytes over the SDP's
	// duration (live: over wall time) at this rate, with slack. Default
	// 50Mbit/s.
	MaxBitrate Bitrate `yaml:"max_bitrate,omitempty"`
	// PassQuery passes a player's query string to the origin (and into the
	// stream key). Default false: the query is dropped, so "?cb=N" cannot
	// make a new fill.
	PassQuery bool `yaml:"pass_query,omitempty"`
	// CompleteOnAbandon overrides cache.complete_on_abandon for this origin.
	CompleteOnAbandon *bool `yaml:"complete_on_abandon,omitempty"`

	// MaxSessions bounds the concurrent sessions the mesh opens with this
	// origin (issue 16, node/filler.go); 0: unlimited.
	MaxSessions int `yaml:"max_sessions,omitempty"`

	// Fill speed and bandwidth (throttle.go). Speed is the most an
	// on-demand fill asks the origin to deliver faster than real time
	// (RTSP Speed; the origin's answer says what it applied); 1 asks for
	// none. Default 8.
	Speed *float64 `yaml:"speed,omitempty"`
	// RangeParallelism is the most sessions an on-demand fill that nobody
	// watches (a prefetch, or a fill its players left) pulls at once,
	// each a range of the stream at the Speed the origin granted (so up
	// to RangeParallelism times Speed, within RateLimit); each counts
	// against MaxSessions. 1 pulls one. Default 5.
	RangeParallelism *int `yaml:"range_parallelism,omitempty"`
	// RateLimit caps the bandwidth of all fills from this origin together
	// (bit/s); a fill then asks for no more Speed than the cap allows.
	// Default 0: no cap.
	RateLimit Bitrate `yaml:"rate_limit,omitempty"`
}

// Peer access values (Origin.PeerAccess).
const (
	PeerAccessTrusted = "trusted"
	PeerAccessAll     = "all"
)

// peersTrustedOnly reports whether o's recordings go only to trusted
// signers.
func (o Origin) peersTrustedOnly() bool {
	switch o.PeerAccess {
	case PeerAccessTrusted:
		return true
	case PeerAccessAll:
		return false
	}
	u, err := url.Parse(o.URL)
	return o.Username != "" || o.Password != "" || (err == nil && u.User != nil)
}

// CacheConfig is the local store.
type CacheConfig struct {
	MaxBytes          ByteSize `yaml:"max_bytes"`           // quota over all recordings; 0 = unlimited
	CompleteOnAbandon bool     `yaml:"complete_on_abandon"` // finish a VOD fill after its last player left; default true
	LiveWindow        Duration `yaml:"live_window"`         // rolling window kept for live streams
	LiveLinger        Duration `yaml:"live_linger"`         // keep a live upstream this long after its last player
	LiveReconnect     Duration `yaml:"live_reconnect"`      // reconnect a lost live origin this long; 0 = never
	// Memory bounds the decoded segments kept in memory for players (the
	// store's segment cache; the relay store of live streams from peers
	// gets a quarter of it). Default 32MiB; 0 turns the cache off.
	Memory ByteSize `yaml:"memory"`

	// Disk headroom (issue 13): free space kept on data_dir's filesystem;
	// below it the node stops storing and relays. Default 512MiB, at least 8MiB.
	MinFree ByteSize `yaml:"min_free"`

	// Retention (issue 14, retention.go): evict the least recently played
	// recordings while data_dir's free space is below FreeTarget (0: off),
	// checked every RetentionInterval (with origins[].max_unplayed).
	FreeTarget        ByteSize `yaml:"free_target"`
	RetentionInterval Duration `yaml:"retention_interval"`
}

// defaultCacheMemory is cache.memory's default: with 500 players of one
// 2 Mbit/s stream a node stays under 100 MiB of RSS (rtspedge/README.md,
// "Memory").
const defaultCacheMemory = 32 << 20

// segmentCache is the store option (Options.CacheBytes) for a store given
// 1/share of cache.memory: negative (off) when it is 0.
func (c CacheConfig) segmentCache(share int64) int64 {
	if c.Memory == 0 {
		return -1
	}
	return max(int64(c.Memory)/share, 1)
}

// LogConfig is the process log.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// MeshConfig is the libp2p mesh.
type MeshConfig struct {
	Enabled     bool     `yaml:"enabled"`
	Listen      []string `yaml:"listen"`      // multiaddrs
	Bootstrap   []string `yaml:"bootstrap"`   // multiaddrs with /p2p/<peer id>
	MDNS        bool     `yaml:"mdns"`        // find LAN neighbours
	PSKFile     string   `yaml:"psk_file"`    // private mesh; forces TCP only
	AllowPeers  []string `yaml:"allow_peers"` // when set, only these peer ids may connect
	FindTimeout Duration `yaml:"find_timeout"`
	ProviderTTL Duration `yaml:"provider_ttl"`
	LiveMaxHops int      `yaml:"live_max_hops"`

	// Trust (issue 12, DESIGN §8; mesh/doc.go "Provenance").
	// Open says on purpose that a mesh listening beyond loopback with no
	// psk_file and no allow_peers may start (anyone may connect and copy).
	Open bool `yaml:"open"`
	// TrustedSigners narrows whose signed content this node accepts
	// (default: allow_peers; else with psk_file every member; else, on
	// loopback-only listen addresses, every peer; else none).
	TrustedSigners []string `yaml:"trusted_signers"`
	// AnswerTimeout bounds a provider's answer to a fill request, on top
	// of its round trip; DistrustFor is how long a provider that lied is
	// skipped.
	AnswerTimeout Duration `yaml:"answer_timeout"`
	DistrustFor   Duration `yaml:"distrust_for"`

	// FillerReach bounds the wait for a stream's designated filler to
	// accept before this node takes over (issue 16, node/filler.go).
	FillerReach Duration `yaml:"filler_reach"`

	// RateLimit caps the bandwidth of fills from each peer (bit/s), live
	// relays included (throttle.go). Default 0: no cap.
	RateLimit Bitrate `yaml:"rate_limit"`
}

// AdminConfig is the admin HTTP API.
type AdminConfig struct {
	Listen string `yaml:"listen"` // host:port; empty disables the API
	Token  string `yaml:"token"`  // bearer token; required when Listen is not loopback

	// Hosts are further names (or name:port) the API answers to in the Host
	// header, e.g. the node's DNS name; its own address always works.
	Hosts []string `yaml:"hosts"`
}

// Defaults returns the configuration a node runs with when nothing is set.
// It passes Validate. Defaults of the components (mesh, store, rtspedge)
// are taken from them, not restated.
func Defaults() Config {
	return Config{
		Version: ConfigVersion,
		DataDir: "rtspmesh-data",
		RTSP: RTSPConfig{
			Listen:        ":8554",
			UDPRTPListen:  ":8000",
			UDPRTCPListen: ":8001",
			Transports:    []string{"tcp", "udp"},

			RequestTimeout:           Duration(rtspedge.DefaultRequestTimeout),
			IdleTimeout:              Duration(rtspedge.DefaultIdleTimeout),
			MaxConnections:           rtspedge.DefaultMaxConns,
			MaxConnectionsPerAddress: rtspedge.DefaultMaxConnsPerAddr,
			MaxSessions:              rtspedge.DefaultMaxSessions,
			MaxSessionsPerAddress:    rtspedge.DefaultMaxSessionsPerAddr,
			Auth:                     PlayerAuthConfig{Realm: "rtspmesh"},
		},
		Cache: CacheConfig{
			MaxBytes:          50 << 30,
			CompleteOnAbandon: true,
			LiveWindow:        Duration(store.DefaultLiveWindow),
			LiveLinger:        Duration(10 * time.Second),
			LiveReconnect:     Duration(30 * time.Second),
			Memory:            defaultCacheMemory,
			MinFree:           store.DefaultMinFree,
			RetentionInterval: Duration(defaultRetentionInterval),
		},
		MemoryLimit:   MemoryLimitAuto,
		OriginTimeout: Duration(rtspedge.DefaultOriginTimeout),
		Log:           LogConfig{Level: "info", Format: "text"},
		Mesh: MeshConfig{
			Enabled:     true,
			Listen:      slices.Clone(mesh.DefaultListen),
			MDNS:        true,
			FindTimeout: Duration(mesh.DefaultFindTimeout),
			ProviderTTL: Duration(mesh.DefaultProviderTTL),
			LiveMaxHops: 3,
			FillerReach: Duration(fill.DefaultFillerReach),

			AnswerTimeout: Duration(mesh.DefaultAnswerTimeout),
			DistrustFor:   Duration(mesh.DefaultDistrustFor),
		},
		Admin: AdminConfig{Listen: "127.0.0.1:9554"},
		Fills: defaultFills(),
	}
}

// LoadFile reads a YAML config over Defaults. Unknown keys are refused with
// their dotted name and line; the file must say `version: 1`. The result is
// not validated: apply env and flags, then call Validate.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func parseConfig(data []byte) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, err
	}
	if len(doc.Content) == 0 {
		return Config{}, errors.New("the file is empty; it needs at least `version: 1`")
	}
	if err := checkKeys(doc.Content[0], reflect.TypeFor[Config](), ""); err != nil {
		return Config{}, err
	}
	cfg := Defaults()
	cfg.Version = 0
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return Config{}, errors.New("more than one YAML document; keep one config per file")
	}
	switch {
	case cfg.Version == 0:
		return Config{}, fmt.Errorf("version: missing; add `version: %d` at the top of the file", ConfigVersion)
	case cfg.Version != ConfigVersion:
		return Config{}, fmt.Errorf("version: %d is not supported; this rtspmesh reads version %d", cfg.Version, ConfigVersion)
	}
	return cfg, nil
}

// checkKeys walks a decoded document against the Config type and refuses a
// mapping key that names no field, with its full dotted name and line.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", prefix, i)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode && !isScalarType(t):
		known := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			name := joinKey(prefix, k.Value)
			f, ok := known[k.Value]
			if !ok {
				return fmt.Errorf("line %d: unknown key %q; keys allowed here: %s",
					k.Line, name, strings.Join(sortedKeys(known), ", "))
			}
			if err := checkKeys(n.Content[i+1], f.Type, name); err != nil {
				return err
			}
		}
	}
	return nil
}

func isScalarType(t reflect.Type) bool {
	return t == reflect.TypeFor[Duration]() || t == reflect.TypeFor[ByteSize]()
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if name := yamlName(f); name != "" {
			m[name] = f
		}
	}
	return m
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

func sortedKeys(m map[string]reflect.StructField) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// redacted stands in for a secret in printed configs.
const redacted = "REDACTED"

// Redacted returns a copy of c safe to print or log: origin passwords and
// the admin token are replaced, and user info is removed from origin URLs.
func (c Config) Redacted() Config {
	r := c
	r.Origins = make([]Origin, len(c.Origins))
	for i, o := range c.Origins {
		o.URL = RedactURL(o.URL)
		if o.Password != "" {
			o.Password = redacted
		}
		r.Origins[i] = o
	}
	if r.Admin.Token != "" {
		r.Admin.Token = redacted
	}
	r.RTSP.Auth.Users = make([]PlayerUser, len(c.RTSP.Auth.Users))
	for i, u := range c.RTSP.Auth.Users {
		if u.HA1 != "" {
			u.HA1 = redacted
		}
		u.Password = ""
		r.RTSP.Auth.Users[i] = u
	}
	return r
}

// String renders the redacted config as YAML.
func (c Config) String() string {
	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return "config: " + err.Error()
	}
	return string(out)
}

// GoString keeps secrets out of %#v.
func (c Config) GoString() string { return c.String() }

// LogValue keeps secrets out of logs: slog prints the redacted config.
func (c Config) LogValue() slog.Value { return slog.AnyValue(printedConfig(c.Redacted())) }

// printedConfig is Config without methods, so slog does not resolve it again.
type printedConfig Config

// String names the origin and its redacted URL.
func (o Origin) String() string { return o.Name + "=" + RedactURL(o.URL) }

// LogValue keeps the origin's credentials out of logs.
func (o Origin) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", o.Name), slog.String("url", RedactURL(o.URL)))
}
