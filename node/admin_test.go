package node_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestAdminAPI walks every endpoint of a node's admin API, happy path and
// bad input: A prefetches from the origin, B prefetches the same stream
// from A, then pins, evicts and the errors around them.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		for i := range 16 {
			c.Media[fmt.Sprintf("sample%d.ts", i)] = origin.SampleClip()
		}
	})
	a, aURL := adminNode(t, org, nil)
	// B joins after A's prefetch, and is the stream's designated filler:
	// A (alone) fills from the origin, B finds A by a DHT lookup.
	b, bURL := adminNode(t, org, nil)
	path := filledBy(t, org, []*testNode{a, b}, b, samplePath, "o/sample%d.ts")
	prefetch := fmt.Sprintf(`{"path": %q}`, path)

	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := call(t, "GET", aURL+p, "", ""); code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}
	info := getJSON[node.NodeStatus](t, "GET", aURL+"/api/v1/node", "", "", 200)
	if info.PeerID != a.PeerID() || info.Version == "" || info.RTSPAddr != a.RTSPAddr().String() ||
		info.StoreBytes != 0 || info.Recordings != 0 || len(info.Origins) != 1 {
		t.Fatalf("node info: %+v", info)
	}
	if got := getJSON[[]node.StreamStatus](t, "GET", aURL+"/api/v1/streams", "", "", 200); len(got) != 0 {
		t.Fatalf("streams of an empty node: %+v", got)
	}

	// Prefetch: bad input first.
	for _, c := range []struct {
		body string
		code int
	}{
		{`{`, 400},
		{`{"path": 3}`, 400},
		{`{"path": "o/sample.ts", "extra": 1}`, 400},
		{`{"path": "o/sample.ts"} {}`, 400},
		{`{}`, 400},
		{`{"path": "o/../etc/passwd"}`, 400},
		{`{"path": "nosuchorigin/sample.ts"}`, 404},
	} {
		wantError(t, "POST", aURL+"/api/v1/prefetch", "", c.body, c.code)
	}

	pa := getJSON[node.PrefetchAnswer](t, "POST", aURL+"/api/v1/prefetch", "", prefetch, 202)
	key, err := node.CanonicalKey("rtsp://" + org.Addr() + "/" + strings.TrimPrefix(path, "o/"))
	if err != nil {
		t.Fatal(err)
	}
	id := store.StreamID(key)
	if pa.Served != node.ServedOrigin || pa.Source != "origin" || pa.Stream.ID != id || pa.Stream.Key != key ||
		pa.Stream.Path != path {
		t.Fatalf("prefetch answer: %+v", pa)
	}
	// While it fills it cannot be evicted.
	if s := getJSON[node.StreamStatus](t, "GET", aURL+"/api/v1/streams/"+id, "", "", 200); s.Filling {
		wantError(t, "DELETE", aURL+"/api/v1/streams/"+id, "", "", http.StatusConflict)
	}
	s := waitStream(t, aURL, id, "A's prefetch complete", func(s node.StreamStatus) bool { return s.State == "complete" })
	if s.SourceKind != "origin" || s.Bytes == 0 || s.Packets == 0 || s.Segments == 0 || s.Duration < 10 ||
		!strings.HasSuffix(s.RTSPURL, a.RTSPAddr().String()[strings.LastIndex(a.RTSPAddr().String(), ":"):]+"/"+path) {
		t.Fatalf("stream after prefetch: %+v", s)
	}
	if s.Classification != "on-demand" || !strings.HasPrefix(s.ClassificationReason, "PLAY Range npt=0.000-") {
		t.Fatalf("classification %q (%q), want on-demand by the PLAY answer", s.Classification, s.ClassificationReason)
	}
	list := getJSON[[]node.StreamStatus](t, "GET", aURL+"/api/v1/streams", "", "", 200)
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("streams: %+v", list)
	}
	// Already complete: 200, served locally.
	waitNoFill(t, aURL)
	if again := getJSON[node.PrefetchAnswer](t, "POST", aURL+"/api/v1/prefetch", "", prefetch, 200); again.Served != node.ServedLocal {
		t.Fatalf("second prefetch: %+v", again)
	}

	// B fills from A.
	joinLater(t, b, a)
	pb := getJSON[node.PrefetchAnswer](t, "POST", bURL+"/api/v1/prefetch", "", prefetch, 202)
	if pb.Served != node.ServedPeer || pb.Source != a.PeerID() {
		t.Fatalf("B's prefetch: %+v, want from peer %s", pb, a.PeerID())
	}
	sb := waitStream(t, bURL, id, "B's prefetch complete", func(s node.StreamStatus) bool { return s.State == "complete" })
	if sb.SourceKind != "peer" || sb.Source != a.PeerID() || sb.Bytes != s.Bytes {
		t.Fatalf("B's stream: %+v (A's: %d bytes)", sb, s.Bytes)
	}
	if sb.Classification != s.Classification || sb.ClassificationReason != s.ClassificationReason {
		t.Fatalf("B's classification %q (%q), want A's", sb.Classification, sb.ClassificationReason)
	}
	peers := getJSON[[]node.PeerStatus](t, "GET", bURL+"/api/v1/peers", "", "", 200)
	var sawA bool
	for _, p := range peers {
		if p.ID == a.PeerID() {
			sawA = len(p.Addrs) > 0 && len(p.Streams) == 1 && p.Streams[0] == key
		}
	}
	if !sawA {
		t.Fatalf("B's peers lack A (%s) providing %s: %+v", a.PeerID(), key, peers)
	}
	binfo := getJSON[node.NodeStatus](t, "GET", bURL+"/api/v1/node", "", "", 200)
	if binfo.FillBytesPeer != s.Bytes || binfo.Peers == 0 || binfo.StoreBytes == 0 || binfo.Recordings != 1 {
		t.Fatalf("B's node info: %+v", binfo)
	}
	if v := metricValue(t, bURL, "", `rtspmesh_fill_bytes_total{source="peer"}`); v != float64(s.Bytes) {
		t.Fatalf("B's peer fill bytes: %v, want %d", v, s.Bytes)
	}
	if v := metricValue(t, bURL, "", `rtspmesh_dht_lookups_total{result="found"}`); v != 1 {
		t.Fatalf("B's DHT lookups found: %v, want 1", v)
	}
	if v := metricValue(t, bURL, "", `rtspmesh_prefetches_total{served="peer"}`); v != 1 {
		t.Fatalf("B's prefetches from a peer: %v, want 1", v)
	}
	if v := metricValue(t, bURL, "", "rtspmesh_mesh_fill_received_bytes_total"); v < float64(s.Bytes) {
		t.Fatalf("B's fill-protocol bytes received: %v, want at least %d", v, s.Bytes)
	}
	if v := metricValue(t, aURL, "", "rtspmesh_mesh_fill_sent_bytes_total"); v < float64(s.Bytes) {
		t.Fatalf("A's fill-protocol bytes sent: %v, want at least %d", v, s.Bytes)
	}
	_ = b

	// Pin and unpin.
	if p := getJSON[node.StreamStatus](t, "POST", aURL+"/api/v1/streams/"+id+"/pin", "", "", 200); !p.Pinned {
		t.Fatalf("after pin: %+v", p)
	}
	if p := getJSON[node.StreamStatus](t, "GET", aURL+"/api/v1/streams/"+id, "", "", 200); !p.Pinned {
		t.Fatal("pin did not persist")
	}
	if p := getJSON[node.StreamStatus](t, "DELETE", aURL+"/api/v1/streams/"+id+"/pin", "", "", 200); p.Pinned {
		t.Fatalf("after unpin: %+v", p)
	}

	// Unknown ids, paths and methods.
	unknown := strings.Repeat("0", 64)
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/api/v1/streams/" + unknown, 404},
		{"GET", "/api/v1/streams/not-an-id", 404},
		{"DELETE", "/api/v1/streams/" + unknown, 404},
		{"POST", "/api/v1/streams/" + unknown + "/pin", 404},
		{"DELETE", "/api/v1/streams/" + unknown + "/pin", 404},
		{"GET", "/api/v1/nothing", 404},
		{"GET", "/api/v2/streams", 404},
		{"PUT", "/api/v1/streams", 405},
		{"POST", "/api/v1/node", 405},
		{"GET", "/api/v1/prefetch", 405},
	} {
		wantError(t, c.method, aURL+c.path, "", "", c.code)
	}

	// Evict.
	if code, body := call(t, "DELETE", aURL+"/api/v1/streams/"+id, "", ""); code != http.StatusOK {
		t.Fatalf("evict: %d %s", code, body)
	}
	wantError(t, "GET", aURL+"/api/v1/streams/"+id, "", "", 404)
	wantError(t, "DELETE", aURL+"/api/v1/streams/"+id, "", "", 404)
	if _, err := a.Store().Info(key); err == nil {
		t.Fatal("the store still holds the evicted recording")
	}
	if v := metricValue(t, aURL, "", "rtspmesh_evictions_total"); v != 1 {
		t.Fatalf("evictions: %v, want 1", v)
	}
	if v := metricValue(t, aURL, "", "rtspmesh_store_recordings"); v != 0 {
		t.Fatalf("store recordings after evict: %v", v)
	}
}

// TestAdminToken: with admin.token set, the API and metrics need it; the
// probes and the dashboard's static page do not.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	const token = "correct-horse-battery"
	_, base := adminNode(t, nil, func(c *node.Config) { c.Admin.Token = token })
	for _, p := range []string{"/api/v1/node", "/api/v1/streams", "/api/v1/peers", "/metrics"} {
		for _, tok := range []string{"", "wrong", token + "x"} {
			code, body := call(t, "GET", base+p, tok, "")
			if code != http.StatusUnauthorized || !strings.Contains(string(body), "token") {
				t.Fatalf("GET %s with token %q: %d %s, want 401", p, tok, code, body)
			}
		}
		if code, body := call(t, "GET", base+p, token, ""); code != http.StatusOK {
			t.Fatalf("GET %s with the token: %d %s", p, code, body)
		}
	}
	wantError(t, "POST", base+"/api/v1/prefetch", "", `{"path": "o/x"}`, http.StatusUnauthorized)
	wantError(t, "DELETE", base+"/api/v1/streams/"+strings.Repeat("a", 64), "", "", http.StatusUnauthorized)
	for _, p := range []string{"/healthz", "/readyz", "/", "/app.js"} {
		if code, _ := call(t, "GET", base+p, "", ""); code != http.StatusOK {
			t.Fatalf("GET %s without a token: %d, want 200", p, code)
		}
	}
}

// TestMetricsMissThenHit: one player miss (filled from the origin), then
// one hit on the complete recording; the counters say exactly that.
func TestMetricsMissThenHit(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	n, base := adminNode(t, org, nil)
	series := func(s string) float64 { return metricValue(t, base, "", s) }
	if v := series(`rtspmesh_requests_total{served="origin"}`); v != 0 {
		t.Fatalf("requests before any player: %v", v)
	}

	if code, _ := describeStatus(t, n.url(samplePath)); code != 200 {
		t.Fatalf("first DESCRIBE: %d", code)
	}
	in := waitComplete(t, n) // 60 s: the clip fills in real time, ~20 s
	waitNoFill(t, base)
	if code, _ := describeStatus(t, n.url(samplePath)); code != 200 {
		t.Fatalf("second DESCRIBE: %d", code)
	}
	if code, _ := describeStatus(t, n.url("nosuch/x")); code != 404 {
		t.Fatalf("DESCRIBE of an unknown origin: %d", code)
	}
	want := map[string]float64{
		`rtspmesh_requests_total{served="origin"}`:     1,
		`rtspmesh_requests_total{served="local"}`:      1,
		`rtspmesh_requests_total{served="peer"}`:       0,
		`rtspmesh_requests_total{served="tail"}`:       0,
		`rtspmesh_request_errors_total`:                1,
		`rtspmesh_cache_hits_total`:                    1,
		`rtspmesh_cache_misses_total{source="origin"}`: 1,
		`rtspmesh_cache_misses_total{source="peer"}`:   0,
		`rtspmesh_fill_bytes_total{source="origin"}`:   float64(in.Bytes),
		`rtspmesh_fill_bytes_total{source="peer"}`:     0,
		`rtspmesh_fills_total{result="complete"}`:      1,
		`rtspmesh_fill_duration_seconds_count`:         1,
		`rtspmesh_dht_lookups_total{result="none"}`:    1,
		`rtspmesh_dht_lookup_duration_seconds_count`:   1,
		`rtspmesh_store_recordings`:                    1,
		`rtspmesh_fills_active`:                        0,
		`rtspmesh_evictions_total`:                     0,
		`rtspmesh_slow_players_dropped_total`:          0,
		`rtspmesh_live_plays_retrailed_total`:          0,
		`rtspmesh_udp_packets_dropped_total`:           0,
		`rtspmesh_player_rtcp_sent_total`:              0, // DESCRIBE only: no player played
		`rtspmesh_player_rtcp_received_total`:          0,
		`rtspmesh_mesh_fill_sent_bytes_total`:          0,
		`rtspmesh_peers_connected`:                     0,
	}
	for s, w := range want {
		if got := series(s); got != w {
			t.Errorf("%s = %v, want %v", s, got, w)
		}
	}
	if v := series("rtspmesh_store_bytes"); v <= 0 {
		t.Errorf("rtspmesh_store_bytes = %v, want > 0", v)
	}
	// One complete recording, nothing dropped: what the store wrote, what
	// it holds and what the stream takes are the same bytes.
	st := getJSON[node.StreamStatus](t, "GET", base+"/api/v1/streams/"+in.ID, "", "", 200)
	if wrote, held := series("rtspmesh_store_written_bytes_total"), series("rtspmesh_store_bytes"); wrote != held || float64(st.StoredBytes) != held {
		t.Errorf("rtspmesh_store_written_bytes_total = %v, rtspmesh_store_bytes = %v, stored_bytes = %d: want the same", wrote, held, st.StoredBytes)
	}
	if v := series("rtspmesh_uptime_seconds"); v <= 0 {
		t.Errorf("rtspmesh_uptime_seconds = %v", v)
	}
}
