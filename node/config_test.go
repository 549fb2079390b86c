package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValid(t *testing.T) {
	t.Parallel()
	c := Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Defaults() does not validate: %v", err)
	}
	if c.RTSP.Listen != ":8554" || c.Admin.Listen != "127.0.0.1:9554" || c.Cache.MaxBytes != 50<<30 ||
		c.Mesh.FindTimeout.Std() != 300*time.Millisecond || !c.Cache.CompleteOnAbandon ||
		c.Cache.LiveReconnect.Std() != 30*time.Second {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

// TestExampleConfigs keeps every configs/*.yaml loadable and valid, and
// configs/node.yaml complete.
func TestExampleConfigs(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("example configs: %v %v", files, err)
	}
	for _, f := range files {
		c, err := LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s does not validate: %v", f, err)
		}
		if len(c.Origins) == 0 {
			t.Errorf("%s has no origin", f)
		}
	}
	// Every settable key appears in the annotated example.
	data, err := os.ReadFile("../configs/node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(data), leaf+":") {
			t.Errorf("configs/node.yaml does not mention %s", k)
		}
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	p := writeConfig(t, `
version: 1
data_dir: /tmp/x
rtsp:
  listen: "127.0.0.1:0"
  transports: [tcp]
  udp_rtp_listen: ""
  udp_rtcp_listen: ""
origins:
  - name: cams
    url: rtsp://user:secret@cam.example.com/live
  - name: vod
    url: rtsps://media.example.com/v
    username: alice
    password: hunter2hunter2
    cache_control_override: max-age=60
cache:
  max_bytes: 500MB
  live_window: 90s
mesh:
  listen: ["/ip4/127.0.0.1/tcp/0"]
`)
	c, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Cache.MaxBytes != 500e6 || c.Cache.LiveWindow.Std() != 90*time.Second {
		t.Errorf("sizes/durations: %v %v", c.Cache.MaxBytes, c.Cache.LiveWindow)
	}
	if c.Cache.LiveLinger.Std() != 10*time.Second || c.Cache.LiveReconnect.Std() != 30*time.Second || !c.Mesh.MDNS {
		t.Errorf("unset keys lost their defaults: %+v", c)
	}
	if len(c.Mesh.Listen) != 1 {
		t.Errorf("a list in the file must replace the default, got %v", c.Mesh.Listen)
	}
	if len(c.Origins) != 2 || c.Origins[1].Password != "hunter2hunter2" {
		t.Errorf("origins: %+v", c.Origins)
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, want string }{
		{"unknown top key", "version: 1\ndata_dri: x\n", `line 2: unknown key "data_dri"`},
		{"unknown nested key", "version: 1\nrtsp:\n  listen: :1\n  lisen: :2\n", `line 4: unknown key "rtsp.lisen"`},
		{"unknown origin key", "version: 1\norigins:\n  - name: a\n    url: rtsp://h/\n    pass: x\n", `line 5: unknown key "origins[0].pass"`},
		{"missing version", "data_dir: x\n", "version: missing"},
		{"future version", "version: 2\n", "version: 2 is not supported"},
		{"bad duration", "version: 1\norigin_timeout: 10\n", `"10" is not a duration`},
		{"bad size", "version: 1\ncache:\n  max_bytes: lots\n", `"lots" is not a size`},
		{"empty", "", "empty"},
		{"two documents", "version: 1\n---\nversion: 1\n", "more than one YAML document"},
		{"not yaml", "version: [1\n", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadFile(writeConfig(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file loaded")
	}
}

// TestValidateNamesKey breaks one key at a time: the error names that key.
func TestValidateNamesKey(t *testing.T) {
	t.Parallel()
	psk := filepath.Join(t.TempDir(), "absent.key")
	for _, tc := range []struct {
		key  string
		edit func(c *Config)
	}{
		{"version", func(c *Config) { c.Version = 7 }},
		{"data_dir", func(c *Config) { c.DataDir = " " }},
		{"rtsp.listen", func(c *Config) { c.RTSP.Listen = "abc" }},
		{"rtsp.transports", func(c *Config) { c.RTSP.Transports = []string{"tcp", "sctp"} }},
		{"rtsp.transports", func(c *Config) { c.RTSP.Transports = nil }},
		{"rtsp.transports", func(c *Config) { c.RTSP.Transports = []string{"tcp", "tcp"} }},
		{"rtsp.udp_rtp_listen", func(c *Config) { c.RTSP.UDPRTPListen = "" }},
		{"rtsp.udp_rtp_listen", func(c *Config) { c.RTSP.UDPRTPListen = "x" }},
		{"rtsp.udp_rtcp_listen", func(c *Config) { c.RTSP.UDPRTCPListen = ":8003" }},
		{"origins[0].name", func(c *Config) { c.Origins[0].Name = "Cams" }},
		{"origins[0].name", func(c *Config) { c.Origins[0].Name = "a/b" }},
		{"origins[0].name", func(c *Config) { c.Origins[0].Name = ".." }},
		{"origins[1].name", func(c *Config) { c.Origins[1].Name = c.Origins[0].Name }},
		{"origins[0] (cams).url", func(c *Config) { c.Origins[0].URL = "http://cam/x" }},
		{"origins[0] (cams).url", func(c *Config) { c.Origins[0].URL = "rtsp:///x" }},
		{"origins[0] (cams).url", func(c *Config) { c.Origins[0].URL = "rtsp://cam:99999/x" }},
		{"origins[0] (cams).url", func(c *Config) { c.Origins[0].URL = "rtsp://cam/x#frag" }},
		{"origins[0] (cams).username", func(c *Config) { c.Origins[0].URL = "rtsp://u:p@cam/"; c.Origins[0].Username = "u" }},
		{"origins[1] (vod).password", func(c *Config) { c.Origins[1].Username = "" }},
		{"origins[0] (cams).cache_control_override", func(c *Config) { c.Origins[0].CacheControlOverride = "forever" }},
		{"origins[0] (cams).cache_control_override", func(c *Config) { c.Origins[0].CacheControlOverride = "max-age=x" }},
		{"mesh.trusted_signers", func(c *Config) { c.Mesh.TrustedSigners = []string{"nope"} }},
		{"mesh.answer_timeout", func(c *Config) { c.Mesh.AnswerTimeout = 0 }},
		{"mesh.distrust_for", func(c *Config) { c.Mesh.DistrustFor = -1 }},
		{"origins[0].peer_access", func(c *Config) { c.Origins[0].PeerAccess = "friends" }},
		{"cache.max_bytes", func(c *Config) { c.Cache.MaxBytes = -1 }},
		{"cache.live_window", func(c *Config) { c.Cache.LiveWindow = 0 }},
		{"cache.live_linger", func(c *Config) { c.Cache.LiveLinger = -1 }},
		{"cache.live_reconnect", func(c *Config) { c.Cache.LiveReconnect = -1 }},
		{"origin_timeout", func(c *Config) { c.OriginTimeout = 0 }},
		{"log.level", func(c *Config) { c.Log.Level = "verbose" }},
		{"log.format", func(c *Config) { c.Log.Format = "xml" }},
		{"mesh.listen", func(c *Config) { c.Mesh.Listen = nil }},
		{"mesh.listen", func(c *Config) { c.Mesh.Listen = []string{"0.0.0.0:4001"} }},
		{"mesh.bootstrap", func(c *Config) { c.Mesh.Bootstrap = []string{"/ip4/10.0.0.1/tcp/4001"} }},
		{"mesh.psk_file", func(c *Config) { c.Mesh.PSKFile = psk }},
		{"mesh.allow_peers", func(c *Config) { c.Mesh.AllowPeers = []string{"not-a-peer"} }},
		{"mesh.find_timeout", func(c *Config) { c.Mesh.FindTimeout = -1 }},
		{"mesh.provider_ttl", func(c *Config) { c.Mesh.ProviderTTL = Duration(time.Second) }},
		{"mesh.live_max_hops", func(c *Config) { c.Mesh.LiveMaxHops = 0 }},
		{"admin.listen", func(c *Config) { c.Admin.Listen = "9554" }},
		{"admin.token", func(c *Config) { c.Admin.Listen = ":9554" }},
		{"admin.token", func(c *Config) { c.Admin.Listen = "10.1.2.3:9554" }},
		{"admin.token", func(c *Config) { c.Admin.Token = "short" }},
		{"admin.hosts", func(c *Config) { c.Admin.Hosts = []string{"http://x/"} }},
		{"cache.min_free", func(c *Config) { c.Cache.MinFree = 1 << 20 }},
		{"cache.memory", func(c *Config) { c.Cache.Memory = -1 }},
		{"memory_limit", func(c *Config) { c.MemoryLimit = -2 }},
		{"rtsp.request_timeout", func(c *Config) { c.RTSP.RequestTimeout = 0 }},
		{"rtsp.idle_timeout", func(c *Config) { c.RTSP.IdleTimeout = -1 }},
		{"rtsp.max_connections", func(c *Config) { c.RTSP.MaxConnections = 0 }},
		{"rtsp.max_connections_per_address", func(c *Config) { c.RTSP.MaxConnectionsPerAddress = -1 }},
		{"rtsp.max_sessions", func(c *Config) { c.RTSP.MaxSessions = 0 }},
		{"rtsp.max_sessions_per_address", func(c *Config) { c.RTSP.MaxSessionsPerAddress = 0 }},
		{"rtsp.auth.realm", func(c *Config) { c.RTSP.Auth.Realm = "" }},
		{"rtsp.auth.users[0].name", func(c *Config) { c.RTSP.Auth.Users = []PlayerUser{{Name: "a:b", HA1: strings.Repeat("0", 32)}} }},
		{"rtsp.auth.users[0].ha1", func(c *Config) { c.RTSP.Auth.Users = []PlayerUser{{Name: "alice"}} }},
		{"rtsp.auth.users[0].ha1", func(c *Config) { c.RTSP.Auth.Users = []PlayerUser{{Name: "alice", HA1: "XYZ"}} }},
		{"origins[0].players", func(c *Config) { c.Origins[0].Players = []string{"nobody"} }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := validConfig(t)
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("%s: a broken value validated", tc.key)
			}
			if !strings.HasPrefix(err.Error(), tc.key+": ") {
				t.Fatalf("error does not start with the key %q: %v", tc.key, err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks a credential: %v", err)
			}
		})
	}
}

// validConfig is Defaults with two origins and a PSK file; it validates.
func validConfig(t *testing.T) Config {
	t.Helper()
	c := Defaults()
	c.Origins = []Origin{
		{Name: "cams", URL: "rtsp://operator:secret@cam.example.com/live"},
		{Name: "vod", URL: "rtsp://media.example.com:8554/vod", Username: "alice", Password: "secretsecret"},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	psk := filepath.Join(t.TempDir(), "mesh.key")
	if err := os.WriteFile(psk, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(c *Config){
		"admin on loopback v6":    func(c *Config) { c.Admin.Listen = "[::1]:0" },
		"admin on localhost":      func(c *Config) { c.Admin.Listen = "localhost:9554" },
		"admin public with token": func(c *Config) { c.Admin.Listen = ":9554"; c.Admin.Token = strings.Repeat("t", 32) },
		"admin disabled":          func(c *Config) { c.Admin.Listen = "" },
		"tcp only": func(c *Config) {
			c.RTSP.Transports = []string{"tcp"}
			c.RTSP.UDPRTPListen = ""
			c.RTSP.UDPRTCPListen = ""
		},
		"udp ports empty":           func(c *Config) { c.RTSP.UDPRTPListen, c.RTSP.UDPRTCPListen = "", "" },
		"mesh disabled, bad listen": func(c *Config) { c.Mesh.Enabled = false; c.Mesh.Listen = nil },
		"psk with defaults":         func(c *Config) { c.Mesh.PSKFile = psk },
		"unlimited cache":           func(c *Config) { c.Cache.MaxBytes = 0 },
		"no live reconnect":         func(c *Config) { c.Cache.LiveReconnect = 0 },
		"cache control":             func(c *Config) { c.Origins[0].CacheControlOverride = "public, max-age=3600" },
		"ipv6 origin":               func(c *Config) { c.Origins[0].URL = "rtsp://[2001:db8::1]:554/x" },
		"bootstrap and allow-list": func(c *Config) {
			id := "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
			c.Mesh.Bootstrap = []string{"/ip4/10.0.0.1/tcp/4001/p2p/" + id}
			c.Mesh.AllowPeers = []string{id}
		},
	} {
		c := validConfig(t)
		edit(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestEffectiveListen(t *testing.T) {
	t.Parallel()
	m := Defaults().Mesh
	if got := m.effectiveListen(); len(got) != 2 {
		t.Fatalf("without PSK: %v", got)
	}
	m.PSKFile = "k"
	if got := m.effectiveListen(); len(got) != 1 || got[0] != "/ip4/0.0.0.0/tcp/4001" {
		t.Fatalf("with PSK only TCP stays, got %v", got)
	}
}

func TestApplyEnv(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	err := c.ApplyEnv([]string{
		"HOME=/root",
		"RTSPMESH_CONFIG=/etc/rtspmesh.yaml",
		"RTSPMESH_RTSP_LISTEN=127.0.0.1:0",
		"RTSPMESH_DATA_DIR=/var/lib/rtspmesh",
		"RTSPMESH_LOG_LEVEL=debug",
		"RTSPMESH_CACHE_MAX_BYTES=2GiB",
		"RTSPMESH_CACHE_COMPLETE_ON_ABANDON=false",
		"RTSPMESH_CACHE_LIVE_RECONNECT=1m30s",
		"RTSPMESH_MESH_FIND_TIMEOUT=1s",
		"RTSPMESH_MESH_LIVE_MAX_HOPS=5",
		"RTSPMESH_RTSP_TRANSPORTS=tcp",
		"RTSPMESH_MESH_BOOTSTRAP= /ip4/1.2.3.4/tcp/1/p2p/x , ,/ip4/5.6.7.8/tcp/1/p2p/y",
		"RTSPMESH_ORIGIN_VOD_PASSWORD=fromenv",
		"RTSPMESH_ADMIN_TOKEN=" + strings.Repeat("z", 20),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.RTSP.Listen != "127.0.0.1:0" || c.DataDir != "/var/lib/rtspmesh" || c.Log.Level != "debug" ||
		c.Cache.MaxBytes != 2<<30 || c.Cache.CompleteOnAbandon || c.Mesh.FindTimeout.Std() != time.Second ||
		c.Mesh.LiveMaxHops != 5 || len(c.RTSP.Transports) != 1 || len(c.Mesh.Bootstrap) != 2 ||
		c.Cache.LiveReconnect.Std() != 90*time.Second ||
		c.Origins[1].Password != "fromenv" || c.Admin.Token != strings.Repeat("z", 20) {
		t.Fatalf("env not applied: %+v", c)
	}

	for _, bad := range []string{"RTSPMESH_RTSP_LISTN=:1", "RTSPMESH_MESH_MDNS=maybe", "RTSPMESH_ORIGIN_TIMEOUT=5",
		"RTSPMESH_ORIGINS=x", "RTSPMESH_VERSION=2", "RTSPMESH_ORIGIN_NOPE_PASSWORD=x"} {
		c := validConfig(t)
		err := c.ApplyEnv([]string{bad})
		name, _, _ := strings.Cut(bad, "=")
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want an error naming the variable", bad, err)
		}
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	c := Defaults()
	for _, k := range Keys() {
		if EnvName(k) == "" || !strings.HasPrefix(EnvName(k), EnvPrefix) {
			t.Fatalf("key %s has no env name", k)
		}
	}
	if err := c.Set("mesh.mdns", "false"); err != nil || c.Mesh.MDNS {
		t.Fatalf("Set mesh.mdns: %v %v", err, c.Mesh.MDNS)
	}
	for _, k := range []string{"origins", "version", "rtsp", "nope", "rtsp.listen.x"} {
		if err := c.Set(k, "x"); err == nil {
			t.Errorf("Set(%q) accepted", k)
		}
	}
}

func TestUnits(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]ByteSize{
		"0": 0, "1048576": 1 << 20, "500MB": 500e6, "50GiB": 50 << 30, "50gib": 50 << 30,
		"1.5TB": 1.5e12, "2 KiB": 2048, "10K": 10240, "3B": 3, "1TiB": 1 << 40,
	} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "1.2.3MB", "5 parsecs", "1e30TB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
	for b, want := range map[ByteSize]string{50 << 30: "50GiB", 500e6: "500MB", 1234: "1234B", 0: "0", 2e12: "2TB"} {
		if got := b.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(b), got, want)
		}
		if back, err := ParseByteSize(b.String()); err != nil || back != b {
			t.Errorf("%q does not parse back: %d %v", b.String(), back, err)
		}
	}
	if d, err := ParseDuration("1h30m"); err != nil || d.Std() != 90*time.Minute || d.String() != "1h30m" {
		t.Errorf("ParseDuration: %v %v", d, err)
	}
	if _, err := ParseDuration("30"); err == nil {
		t.Error("a duration without unit was accepted")
	}
	type both struct {
		D Duration
		B ByteSize
	}
	in := both{Duration(1500 * time.Millisecond), 20 << 30}
	js := mustJSON(t, in)
	var out both
	if err := json.Unmarshal([]byte(js), &out); err != nil || out != in || js != `{"D":"1.5s","B":"20GiB"}` {
		t.Errorf("JSON round trip: %s -> %+v, %v", js, out, err)
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	c.Admin.Token = "tokentokentokentoken"
	c.RTSP.Auth.Users = []PlayerUser{{Name: "viewer", HA1: "5ec2e75ec2e75ec2e75ec2e75ec2e75e"}, {Name: "env", Password: "secretpw"}}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c, "origin", c.Origins[0])
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", c, "origin", c.Origins[1])
	for name, out := range map[string]string{
		"String":   c.String(),
		"%v":       fmt.Sprintf("%v %+v %#v %s", c, c, c, c.Origins),
		"slog":     logged.String(),
		"Redacted": mustJSON(t, c.Redacted()),
	} {
		for _, secret := range []string{"secret", "operator", "tokentoken", "5ec2e"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows %q:\n%s", name, secret, out)
			}
		}
		if !strings.Contains(out, "cam.example.com") {
			t.Errorf("%s lost the origin host:\n%s", name, out)
		}
	}
	if c.Origins[0].URL != "rtsp://operator:secret@cam.example.com/live" || c.Admin.Token == redacted {
		t.Fatal("Redacted changed the original config")
	}
	// The printed config loads back (passwords aside).
	if _, err := parseConfig([]byte(c.String())); err != nil {
		t.Fatalf("String() output does not load: %v\n%s", err, c.String())
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCacheMemory: cache.memory sizes the store's segment cache, a quarter
// of it the relay store's, and 0 turns both off.
func TestCacheMemory(t *testing.T) {
	c := Defaults().Cache
	if got := c.segmentCache(1); got != 32<<20 {
		t.Errorf("default: store cache %d, want 32 MiB", got)
	}
	if got := c.segmentCache(4); got != 8<<20 {
		t.Errorf("default: relay cache %d, want 8 MiB", got)
	}
	c.Memory = 0
	if a, b := c.segmentCache(1), c.segmentCache(4); a >= 0 || b >= 0 {
		t.Errorf("memory 0: caches %d and %d, want both off (negative)", a, b)
	}
}
