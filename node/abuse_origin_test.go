package node_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/fakeorigin"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/store"
)

// startNodeLogs starts a node whose log the test reads as one text.
func startNodeLogs(t *testing.T, cfg node.Config) (*testNode, func() string) {
	t.Helper()
	logs := newLogRecords()
	n := startLoggedNode(t, cfg, logs)
	text := func() string { return strings.Join(logs.at(slog.LevelDebug), "\n") }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node log:\n%s", text())
		}
	})
	return n, text
}

// fakeNodeConfig is a node without a mesh whose origin "f" is the fake.
func fakeNodeConfig(t *testing.T, f *fakeorigin.Server, mod func(*node.Origin)) node.Config {
	cfg := nodeConfig(t, nil)
	cfg.Mesh.Enabled = false
	o := node.Origin{Name: "f", URL: "rtsp://" + f.Addr()}
	if mod != nil {
		mod(&o)
	}
	cfg.Origins = []node.Origin{o}
	return cfg
}

// tcpPlayer starts an RTSP client over TCP for url's host; the caller
// closes it.
func tcpPlayer(t *testing.T, url string) (*gortsplib.Client, *base.URL) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: 20 * time.Second}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	return c, u
}

// describeReason sends one DESCRIBE on a new connection and returns the
// status and reason phrase (200 on success).
func describeReason(t *testing.T, url string) (base.StatusCode, string) {
	t.Helper()
	c, u := tcpPlayer(t, url)
	defer c.Close()
	_, res, err := c.Describe(u)
	var bad liberrors.ErrClientBadStatusCode
	switch {
	case err == nil:
		return res.StatusCode, res.StatusMessage
	case errors.As(err, &bad):
		return bad.Code, bad.Message
	}
	t.Fatalf("DESCRIBE %s: %v", url, err)
	return 0, ""
}

// TestNodeRedirectOffOrigin: an origin with credentials that redirects to
// another listener: the player gets 502 with a reason, the other listener
// never gets a connection, and nothing is stored under the origin's key.
func TestNodeRedirectOffOrigin(t *testing.T) {
	t.Parallel()
	other := fakeorigin.StartT(t, fakeorigin.Config{Auth: "basic", User: "alice", Pass: "s3cretpw"})
	redirector := fakeorigin.StartT(t, fakeorigin.Config{Redirects: map[string]string{"x.ts": other.URL("x.ts")},
		Auth: "digest", User: "alice", Pass: "s3cretpw"})
	n, logs := startNodeLogs(t, fakeNodeConfig(t, redirector, func(o *node.Origin) {
		o.Username, o.Password = "alice", "s3cretpw"
	}))
	code, reason := describeReason(t, n.url("f/x.ts"))
	if code != base.StatusBadGateway || !strings.Contains(reason, "policy") {
		t.Fatalf("player got %d %q, want 502 naming the policy", code, reason)
	}
	if c := other.Accepted(); c != 0 {
		t.Fatalf("the other listener got %d connections: %+v", c, other.Requests())
	}
	if in, err := n.Stream("f/x.ts"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stored after a refused redirect: %+v, %v", in, err)
	}
	if l := logs(); !strings.Contains(l, "origin refused by policy") || strings.Contains(l, "s3cretpw") {
		t.Fatalf("log: want the refusal without the password:\n%s", l)
	}
	t.Logf("player: %d %s", code, reason)
}

// TestNodeBasicOverPlainRefused: an origin offering only Basic over rtsp://
// gets no credentials, and the player a 502; with allow_basic_over_plain
// the same origin plays.
func TestNodeBasicOverPlainRefused(t *testing.T) {
	t.Parallel()
	f := fakeorigin.StartT(t, fakeorigin.Config{Auth: "basic", User: "alice", Pass: "s3cretpw"})
	n, _ := startNodeLogs(t, fakeNodeConfig(t, f, func(o *node.Origin) { o.Username, o.Password = "alice", "s3cretpw" }))
	if code, reason := describeReason(t, n.url("f/x.ts")); code != base.StatusBadGateway {
		t.Fatalf("player got %d %q, want 502", code, reason)
	}
	for _, r := range f.Requests() {
		if r.Authorization != "" {
			t.Fatalf("%s carried Authorization %q", r.Method, r.Authorization)
		}
	}
	allowed, _ := startNodeLogs(t, fakeNodeConfig(t, f, func(o *node.Origin) {
		o.Username, o.Password, o.AllowBasicOverPlain = "alice", "s3cretpw", true
	}))
	if code, reason := describeReason(t, allowed.url("f/x.ts")); code != base.StatusOK {
		t.Fatalf("allow_basic_over_plain: player got %d %q, want 200", code, reason)
	}
}

// playAll plays url over TCP until the stream ends or within passes, and
// returns the packets received and the largest.
func playAll(t *testing.T, url string, within time.Duration) (packets int64, largest int64) {
	t.Helper()
	c, u := tcpPlayer(t, url)
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("setup: %v", err)
	}
	var got, big atomic.Int64
	c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, p *rtp.Packet) {
		got.Add(1)
		if s := int64(p.MarshalSize()); s > big.Load() {
			big.Store(s)
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("play: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		c.Close()
		<-done
	}
	return got.Load(), big.Load()
}

// TestNodeStreamLimits: an origin that floods ten times what its SDP allows
// at max_bitrate, and one that sends 64 KB packets: each fill ends partial
// with a log line, the bytes stored stay within the budget, the player
// plays what was stored, and the node goes on serving.
func TestNodeStreamLimits(t *testing.T) {
	t.Parallel()
	const rate = 4_000_000
	budget := uint64(rate / 8 * (2.5 + 2)) // (2 s + 1/4 + 2 s) at 4 Mbit/s
	for _, tc := range []struct {
		name    string
		cfg     fakeorigin.Config
		maxKept uint64
		log     string
	}{
		{"flood", fakeorigin.Config{Duration: 2 * time.Second, Packets: 20_000, PacketSize: 1200}, budget, "Mbit/s over the SDP duration"},
		{"64KB packets", fakeorigin.Config{Packets: 20, PacketSize: 65_000}, 0, "larger than the 1472 a player can receive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := fakeorigin.StartT(t, tc.cfg)
			n, logs := startNodeLogs(t, fakeNodeConfig(t, f, func(o *node.Origin) { o.MaxBitrate = rate }))
			packets, largest := playAll(t, n.url("f/x.ts"), 3*time.Second)
			var in store.Info
			testkit.Eventually(t, 20*time.Second, "fill ends partial", func() bool {
				var err error
				in, err = n.Stream("f/x.ts")
				return err == nil && in.State == store.StatePartial
			})
			if in.Bytes > tc.maxKept {
				t.Fatalf("stored %d bytes, more than %d", in.Bytes, tc.maxKept)
			}
			if largest > 1472 {
				t.Fatalf("the player got a %d-byte packet", largest)
			}
			testkit.Eventually(t, 5*time.Second, "the limit logged", func() bool {
				return strings.Contains(logs(), "origin stream over its limits") && strings.Contains(logs(), tc.log)
			})
			// The node still serves: the next player resumes the partial
			// recording, which is over its budget at once.
			if code, reason := describeReason(t, n.url("f/x.ts")); code != base.StatusOK {
				t.Fatalf("next player got %d %q", code, reason)
			}
			t.Logf("origin sent %d bytes; stored %d bytes, %d packets (budget %d); player got %d packets, largest %d",
				f.SentBytes(), in.Bytes, in.Packets, tc.maxKept, packets, largest)
		})
	}
}

// rssBytes is the test process's resident set (VmRSS of /proc/self/status).
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestCacheBusting: one connection sends 50 DESCRIBEs of sample.ts?cb=N in
// a bounded loop. Without pass_query the query is dropped: one origin
// session, and the per-connection request rate refuses the rest of the
// burst. With pass_query the fills are capped (per client, in all) and
// the rest refused with 503 and the bound; the counter equals the refusals.
func TestCacheBusting(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	for _, tc := range []struct {
		name        string
		passQuery   bool
		rates       int // fills.describes_per_*; 0 keeps the defaults
		maxFills    int
		maxPerAddr  int
		wantOK      func(ok int, took time.Duration) bool
		wantOrigin  int    // DESCRIBEs the origin sees
		limit       string // metric label
		reason      string
		wantRefused int // -1: 50 - ok
	}{
		{"query dropped, default rates", false, 0, 64, 16,
			// A burst of 10, then 5 a second while the loop runs.
			func(ok int, took time.Duration) bool { return ok >= 10 && ok <= 10+1+int(5*took.Seconds()) }, 1, "requests_per_connection", "too many requests on this connection", -1},
		{"pass_query, max_per_client 4", true, 1000, 64, 4,
			func(ok int, _ time.Duration) bool { return ok == 4 }, 4, "fills_per_client", "too many fills for this client", 46},
		{"pass_query, max_concurrent 3", true, 1000, 3, 3,
			func(ok int, _ time.Duration) bool { return ok == 3 }, 3, "fills", "too many fills", 47},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nodeConfig(t, org)
			cfg.Mesh.Enabled = false
			cfg.Admin.Listen = "127.0.0.1:0"
			cfg.Origins[0].PassQuery = tc.passQuery
			// The fills started must last the loop, however slow a loaded
			// machine makes it (one loaded run took 30 s for the 50, and
			// fills of the 20 s sample at Speed 8 ended meanwhile, freeing
			// their slots): 200 kbit/s for all of them together makes
			// each take minutes.
			cfg.Origins[0].RateLimit = 200_000
			cfg.Fills.MaxConcurrent, cfg.Fills.MaxPerClient = tc.maxFills, tc.maxPerAddr
			if tc.rates > 0 {
				cfg.Fills.DescribesPerConnection, cfg.Fills.DescribesPerAddress = tc.rates, tc.rates
			}
			before, _ := org.Sessions("sample.ts")
			rssBefore := rssBytes(t)
			n := startNode(t, cfg)
			api := "http://" + n.AdminAddr().String()

			c, _ := tcpPlayer(t, n.url(samplePath))
			ok, refused := 0, 0
			start := time.Now()
			for i := range 50 {
				u, err := base.ParseURL(n.url(fmt.Sprintf("%s?cb=%d", samplePath, i)))
				if err != nil {
					t.Fatal(err)
				}
				_, _, err = c.Describe(u)
				var bad liberrors.ErrClientBadStatusCode
				switch {
				case err == nil:
					ok++
				case errors.As(err, &bad) && bad.Code == base.StatusServiceUnavailable:
					if want := "Service Unavailable (" + tc.reason + ")"; bad.Message != want {
						t.Fatalf("DESCRIBE %d: reason %q, want %q", i, bad.Message, want)
					}
					refused++
				default:
					t.Fatalf("DESCRIBE %d: %v", i, err)
				}
			}
			took := time.Since(start)
			after, _ := org.Sessions("sample.ts")
			rssAfter := rssBytes(t)
			started := metricValue(t, api, "", `rtspmesh_cache_misses_total{source="origin"}`)
			counted := metricValue(t, api, "", fmt.Sprintf(`rtspmesh_refused_total{limit=%q}`, tc.limit))
			c.Close()

			if !tc.wantOK(ok, took) {
				t.Errorf("%d DESCRIBEs answered 200, %d refused", ok, refused)
			}
			wantRefused := tc.wantRefused
			if wantRefused < 0 {
				wantRefused = 50 - ok
			}
			if refused != wantRefused || int(counted) != refused {
				t.Errorf("refused %d (want %d), counter %v", refused, wantRefused, counted)
			}
			if got := after - before; got != tc.wantOrigin || int(started) != tc.wantOrigin {
				t.Errorf("origin DESCRIBEs %d, fills started %v; want %d", got, started, tc.wantOrigin)
			}
			t.Logf("50 DESCRIBEs in %v: %d answered, %d refused (%q; counter %v); origin sessions %d, fills started %v; RSS %d → %d MiB",
				took.Round(time.Millisecond), ok, refused, tc.limit, counted, after-before, started, rssBefore>>20, rssAfter>>20)
		})
	}
}

// TestAbandonedFill: origins[].complete_on_abandon overrides cache's: a
// fill of an origin with false stops and stays partial when its only player
// leaves, though cache says true; one with true goes on, though cache says
// false.
func TestAbandonedFill(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	for _, complete := range []bool{false, true} {
		t.Run(fmt.Sprintf("complete_on_abandon=%v", complete), func(t *testing.T) {
			t.Parallel()
			cfg := nodeConfig(t, org)
			cfg.Mesh.Enabled = false
			cfg.Cache.CompleteOnAbandon = !complete
			cfg.Origins[0].CompleteOnAbandon = &complete
			n := startNode(t, cfg)
			if code, reason := describeReason(t, n.url(samplePath)); code != base.StatusOK {
				t.Fatalf("DESCRIBE: %d %s", code, reason)
			}
			// describeStatus closed its connection: the player left.
			var in store.Info
			if !complete {
				testkit.Eventually(t, 10*time.Second, "abandoned fill stops partial", func() bool {
					var err error
					in, err = n.Stream(samplePath)
					return err == nil && in.State == store.StatePartial
				})
				return
			}
			first, err := n.Stream(samplePath)
			if err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, 10*time.Second, "abandoned fill goes on", func() bool {
				in, err = n.Stream(samplePath)
				return err == nil && in.State == store.StateFilling && in.Bytes > first.Bytes+100_000
			})
		})
	}
}
