package node

import (
	"strings"
	"testing"

	"github.com/rtspmesh/rtspmesh/mesh"
)

func TestParseBitrate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Bitrate{
		"50Mbit/s": 50_000_000, "8000kbit/s": 8_000_000, "2.5Mbps": 2_500_000, "1Gbit": 1e9, "64000": 64000,
	} {
		if got, err := ParseBitrate(in); err != nil || got != want {
			t.Errorf("ParseBitrate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "50MB/s", "-1Mbit/s", "1e99Gbit/s"} {
		if _, err := ParseBitrate(in); err == nil {
			t.Errorf("ParseBitrate(%q) accepted", in)
		}
	}
	if s := Bitrate(50_000_000).String(); s != "50Mbit/s" {
		t.Errorf("String() = %q", s)
	}
}

// TestValidateLimits: every bad fills.* or origins[] limit key is named.
func TestValidateLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key string
		mod func(*Config)
	}{
		{"fills.max_concurrent", func(c *Config) { c.Fills.MaxConcurrent = 0 }},
		{"fills.max_concurrent", func(c *Config) { c.Fills.MaxConcurrent = mesh.MaxMaxFills + 1 }},
		{"fills.max_per_client", func(c *Config) { c.Fills.MaxPerClient = 0 }},
		{"fills.max_per_client", func(c *Config) { c.Fills.MaxPerClient = c.Fills.MaxConcurrent + 1 }},
		{"fills.describes_per_connection", func(c *Config) { c.Fills.DescribesPerConnection = -1 }},
		{"fills.describes_per_address", func(c *Config) { c.Fills.DescribesPerAddress = 0 }},
		{"origins[0] (o).redirects", func(c *Config) { c.Origins[0].Redirects = "anywhere" }},
		{"origins[0] (o).max_bitrate", func(c *Config) { c.Origins[0].MaxBitrate = -1 }},
		{"origins[0] (o).allow_basic_over_plain", func(c *Config) {
			c.Origins[0].URL, c.Origins[0].AllowBasicOverPlain = "rtsps://h/x", true
		}},
		{"origins[0] (o).speed", func(c *Config) { c.Origins[0].Speed = new(0.5) }},
		{"origins[0] (o).speed", func(c *Config) { c.Origins[0].Speed = new(float64(maxSpeed + 1)) }},
		{"origins[0] (o).range_parallelism", func(c *Config) { c.Origins[0].RangeParallelism = new(0) }},
		{"origins[0] (o).range_parallelism", func(c *Config) { c.Origins[0].RangeParallelism = new(maxRangeParallelism + 1) }},
		{"origins[0] (o).rate_limit", func(c *Config) { c.Origins[0].RateLimit = -1 }},
		{"mesh.rate_limit", func(c *Config) { c.Mesh.RateLimit = -1 }},
	} {
		c := Defaults()
		c.Origins = []Origin{{Name: "o", URL: "rtsp://h/x"}}
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("%s: Validate() = %v, want an error naming the key", tc.key, err)
		}
	}
	c := Defaults()
	c.Origins = []Origin{{Name: "o", URL: "rtsp://h/x", Redirects: "refuse", MaxBitrate: 8e6, PassQuery: true,
		Speed: new(1.0), RateLimit: 4e6}}
	c.Mesh.RateLimit = 20e6
	if err := c.Validate(); err != nil {
		t.Fatalf("valid limits refused: %v", err)
	}
}

// TestLoadLimits reads the limit keys from a file.
func TestLoadLimits(t *testing.T) {
	t.Parallel()
	c, err := parseConfig([]byte(`
version: 1
origins:
  - name: o
    url: rtsp://h/x
    redirects: refuse
    allow_basic_over_plain: true
    max_bitrate: 8Mbit/s
    pass_query: true
    complete_on_abandon: true
    speed: 4
    range_parallelism: 6
    rate_limit: 6Mbit/s
fills:
  max_concurrent: 10
  max_per_client: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Origins[0]
	if o.Redirects != "refuse" || !o.AllowBasicOverPlain || o.MaxBitrate != 8e6 || !o.PassQuery ||
		!c.completeOnAbandon(&o) || c.Fills.MaxConcurrent != 10 || c.Fills.MaxPerClient != 2 ||
		c.Fills.DescribesPerConnection != 5 || o.speed() != 4 || o.rangeParallelism() != 6 || o.RateLimit != 6e6 {
		t.Fatalf("loaded %+v %+v", o, c.Fills)
	}
	if s := (Origin{}).speed(); s != DefaultSpeed {
		t.Fatalf("an origin without speed asks for %v, want %v", s, DefaultSpeed)
	}
	if p := (Origin{}).rangeParallelism(); p != DefaultRangeParallelism {
		t.Fatalf("an origin without range_parallelism pulls %d ranges, want %d", p, DefaultRangeParallelism)
	}
	if !c.completeOnAbandon(&Origin{}) {
		t.Fatal("an origin without complete_on_abandon does not follow cache's default (true)")
	}
	no := false
	if c.completeOnAbandon(&Origin{CompleteOnAbandon: &no}) {
		t.Fatal("origins[].complete_on_abandon: false does not override cache's true")
	}
}
