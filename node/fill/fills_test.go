package fill

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// harness is a registry of fills over in-memory stores, without a mesh,
// running until the test ends, and the hooks it called.
type harness struct {
	*Fills
	st, relay *store.Store
	filled    atomic.Uint64 // bytes, any source
	ended     chan string   // results
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{ended: make(chan string, 16)}
	for _, st := range []**store.Store{&h.st, &h.relay} {
		s, err := store.Open("", store.Options{InMemory: true, Logger: testkit.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		*st = s
	}
	cfg := Config{
		Store: h.st, Relay: h.relay, OriginTimeout: 5 * time.Second, LiveLinger: 200 * time.Millisecond,
		LiveMaxHops: 3, Logger: testkit.Logger(),
		Hooks: Hooks{
			Filled: func(_ string, n uint64) { h.filled.Add(n) },
			Ended:  func(result string, _ time.Duration) { h.ended <- result },
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	h.Fills = New(cfg)
	testkit.Run(t, "fills", h.Run)
	return h
}

func startOrigin(t *testing.T, cfg origin.Config) *origin.Origin {
	t.Helper()
	cfg.Listen, cfg.Logger = "127.0.0.1:0", testkit.Logger()
	o, err := origin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "origin", o.Run)
	return o
}

// TestSingleFlight: concurrent misses of one key make one fill and one
// origin session; the first is served from the origin, the others tail it.
// Once every reader left a VOD fill (complete_on_abandon off), it stops.
func TestSingleFlight(t *testing.T) {
	o := startOrigin(t, origin.Config{Media: map[string][]byte{"sample.ts": origin.SampleClip()}})
	h := newHarness(t, nil)
	url := "rtsp://" + o.Addr() + "/sample.ts"

	const readers = 8
	recs := make([]*Recording, readers)
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() {
			r, err := h.Open(t.Context(), Request{Key: url, Origin: rtspedge.OriginRequest{URL: url}})
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				return
			}
			recs[i] = r
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	served := map[Served]int{}
	for _, r := range recs {
		served[r.Served()]++
		if r.Done() == nil || r.Store() != h.st {
			t.Errorf("reader of a fill in progress: done %v, store %p (want %p)", r.Done(), r.Store(), h.st)
		}
	}
	if served[ServedOrigin] != 1 || served[ServedTail] != readers-1 {
		t.Errorf("served %v, want one origin and %d tails", served, readers-1)
	}
	if d, _ := o.Sessions("sample.ts"); d != 1 {
		t.Errorf("%d DESCRIBEs at the origin, want 1", d)
	}
	snap := h.Snapshot()
	if len(snap) != 1 || snap[0].Key != url || snap[0].Readers != readers || snap[0].Live {
		t.Errorf("snapshot %+v, want one VOD fill of %s with %d readers", snap, url, readers)
	}

	testkit.Eventually(t, 20*time.Second, "a second of the stream stored", func() bool {
		_, last, err := h.st.Span(url)
		return err == nil && last >= time.Second
	})
	for _, r := range recs {
		r.Release()
	}
	select {
	case res := <-h.ended:
		if res != "partial" {
			t.Errorf("abandoned fill ended %q, want partial", res)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the abandoned fill did not stop")
	}
	testkit.Eventually(t, 10*time.Second, "the registry empty", func() bool { return len(h.Snapshot()) == 0 })
	if h.filled.Load() == 0 {
		t.Error("no filled bytes reported")
	}
}

// TestCompleteIsLocal: the flight checks the store again: a complete
// recording is served local, with no fill and no origin session.
func TestCompleteIsLocal(t *testing.T) {
	h := newHarness(t, nil)
	const key = "rtsp://127.0.0.1:1/nowhere"
	w, err := h.st.Create(store.Manifest{Key: key, Source: store.SourceOrigin, Tracks: []store.Track{{Media: "video", PayloadType: 96, ClockRate: 90000, Codec: "H264"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	r, err := h.Open(t.Context(), Request{Key: key, Origin: rtspedge.OriginRequest{URL: key}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if r.Served() != ServedLocal || r.Done() != nil || len(h.Snapshot()) != 0 {
		t.Errorf("served %s, done %v, %d fills; want local, no fill", r.Served(), r.Done(), len(h.Snapshot()))
	}
}

// TestLiveLinger: a live fill outlives its last reader by LiveLinger, and
// while a neighbour relays it (JoinLive) it does not stop at all.
func TestLiveLinger(t *testing.T) {
	o := startOrigin(t, origin.Config{Live: map[string][]byte{"live": origin.SampleClip()}})
	h := newHarness(t, nil)
	url := "rtsp://" + o.Addr() + "/live"
	r, err := h.Open(t.Context(), Request{Key: url, Origin: rtspedge.OriginRequest{URL: url}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Served() != ServedOrigin || !r.Manifest().Live {
		t.Fatalf("served %s, live %v; want a live fill from the origin", r.Served(), r.Manifest().Live)
	}
	relay := h.JoinLive(url)
	r.Release()
	select {
	case res := <-h.ended:
		t.Fatalf("the fill ended (%s) while a neighbour relays it", res)
	case <-time.After(3 * h.cfg.LiveLinger):
	}
	start := time.Now()
	relay()
	select {
	case <-h.ended:
		if took := time.Since(start); took < h.cfg.LiveLinger {
			t.Errorf("the fill stopped %v after its last reader, before the linger of %v", took, h.cfg.LiveLinger)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the live fill did not stop after its linger")
	}
}
