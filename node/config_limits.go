package node

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/node/fill"
	"github.com/rtspmesh/rtspmesh/rtspedge"
)

// FillsConfig bounds what players can make the node fetch
// (docs/operations.md, "Origin and fill limits"). Over a bound the player
// gets 503 with the bound in the reason phrase, and rtspmesh_refused_total
// counts it.
type FillsConfig struct {
	// MaxConcurrent fills may run at once, from origins and peers, live
	// included. Default 64.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxPerClient fills started by one client address may run at once.
	// Default 16 (an NVR pulling its cameras through the node is one client).
	MaxPerClient int `yaml:"max_per_client"`
	// DescribesPerConnection is how many streams one RTSP connection may
	// ask for (DESCRIBE, or SETUP without one) per second, in bursts of
	// twice as many. Default 5.
	DescribesPerConnection int `yaml:"describes_per_connection"`
	// DescribesPerAddress is the same per client address, over all its
	// connections. Default 20.
	DescribesPerAddress int `yaml:"describes_per_address"`
}

func defaultFills() FillsConfig {
	return FillsConfig{MaxConcurrent: 64, MaxPerClient: 16, DescribesPerConnection: 5, DescribesPerAddress: 20}
}

// Origin policy values (origins[].redirects).
const (
	redirectsSameOrigin = "same-origin"
	redirectsRefuse     = "refuse"
)

// completeOnAbandon says whether a VOD fill of o goes on to the end once
// its last player left: the origin's own setting, else cache.complete_on_abandon.
func (c *Config) completeOnAbandon(o *Origin) bool {
	if o != nil && o.CompleteOnAbandon != nil {
		return *o.CompleteOnAbandon
	}
	return c.Cache.CompleteOnAbandon
}

// fillRequest is what the fill registry needs for key of origin o: the
// origin's URL and policy, whether an abandoned fill completes, and the
// client that asks ("" for a prefetch).
func (n *Node) fillRequest(o *Origin, originURL, key, client string) fill.Request {
	req := fill.Request{Key: key, Origin: rtspedge.OriginRequest{URL: originURL},
		CompleteOnAbandon: n.cfg.completeOnAbandon(o), Client: client}
	if o != nil {
		req.Origin.RefuseRedirects = o.Redirects == redirectsRefuse
		req.Origin.AllowBasicOverPlain = o.AllowBasicOverPlain
		req.Origin.MaxBitrate = int64(o.MaxBitrate)
		req.Origin.Speed = o.speed()
		req.RangeParallelism = o.rangeParallelism()
		req.Origin.RateLimit = int64(o.RateLimit)
		req.Origin.WrapConn = n.throttles.origin(o)
		pol := o.Policy() // config_fresh.go
		req.Policy = &pol
	}
	return req
}

func (c *Config) validateFills(bad complain) {
	f := c.Fills
	atLeastOne := func(key string, v int, example int) {
		if v < 1 {
			bad(key, "%d must be at least 1; write e.g. %d", v, example)
		}
	}
	d := defaultFills()
	atLeastOne("fills.max_concurrent", f.MaxConcurrent, d.MaxConcurrent)
	atLeastOne("fills.max_per_client", f.MaxPerClient, d.MaxPerClient)
	atLeastOne("fills.describes_per_connection", f.DescribesPerConnection, d.DescribesPerConnection)
	atLeastOne("fills.describes_per_address", f.DescribesPerAddress, d.DescribesPerAddress)
	if f.MaxConcurrent > mesh.MaxMaxFills {
		bad("fills.max_concurrent", "%d is more than %d: fills with one peer could reserve %s (docs/operations.md, \"Origin and fill limits\"); write e.g. %d",
			f.MaxConcurrent, mesh.MaxMaxFills, ByteSize(mesh.FillMemory(f.MaxConcurrent)), d.MaxConcurrent)
	}
	if f.MaxPerClient > f.MaxConcurrent && f.MaxConcurrent >= 1 {
		bad("fills.max_per_client", "%d is more than fills.max_concurrent (%d); lower it or raise fills.max_concurrent", f.MaxPerClient, f.MaxConcurrent)
	}
	for i, o := range c.Origins {
		key := fmt.Sprintf("origins[%d] (%s)", i, o.Name)
		switch o.Redirects {
		case "", redirectsSameOrigin, redirectsRefuse:
		default:
			bad(key+".redirects", "%q is not a policy; write %q (the default) or %q", o.Redirects, redirectsSameOrigin, redirectsRefuse)
		}
		if o.MaxBitrate < 0 {
			bad(key+".max_bitrate", "%s is negative; write e.g. \"50Mbit/s\", or leave it out for the default", o.MaxBitrate)
		}
		if o.AllowBasicOverPlain && strings.HasPrefix(o.URL, "rtsps:") {
			bad(key+".allow_basic_over_plain", "the origin is rtsps://, where Basic is always allowed; remove the key")
		}
	}
}

// Bitrate is bits per second, written "50Mbit/s", "8000kbit/s", "2.5Mbps"
// (decimal units: k = 10^3, M = 10^6, G = 10^9; "/s" may be left out), or a
// plain number of bit/s. "MB/s" is refused: bytes or bits would be a guess.
type Bitrate int64

var bitUnits = map[string]float64{"": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}

// ParseBitrate parses "50Mbit/s", "2.5Mbps" or "8000000".
func ParseBitrate(s string) (Bitrate, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	unit = strings.TrimSuffix(unit, "/s")
	if strings.HasSuffix(unit, "bps") {
		unit = strings.TrimSuffix(unit, "bps") + "bit"
	}
	mult, ok := bitUnits[unit]
	v, err := strconv.ParseFloat(t[:i], 64)
	if !ok || err != nil || v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a bitrate; write e.g. \"50Mbit/s\" or \"8000kbit/s\"", s)
	}
	return Bitrate(math.Round(v * mult)), nil
}

// String prints r with the largest unit that represents it exactly.
func (r Bitrate) String() string {
	for _, u := range []struct {
		name string
		size int64
	}{{"Gbit/s", 1e9}, {"Mbit/s", 1e6}, {"kbit/s", 1e3}} {
		if r != 0 && int64(r)%u.size == 0 {
			return strconv.FormatInt(int64(r)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(r), 10) + "bit/s"
}

// UnmarshalYAML reads a bitrate scalar.
func (r *Bitrate) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalScalar(n, "a bitrate such as \"50Mbit/s\"", ParseBitrate, r)
}

// MarshalYAML writes r as "50Mbit/s".
func (r Bitrate) MarshalYAML() (any, error) { return r.String(), nil }
