package mesh

import (
	"bufio"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/store"
)

// providerOf is a as a Provider, as FindProviders would return it.
func providerOf(a *testNode) Provider {
	return Provider{ID: a.ID(), Addrs: a.Addrs()}
}

// startPair starts two nodes that know each other's address (no DHT needed).
func startPair(t *testing.T, cfg Config) (a, b *testNode) {
	return startNode(t, cfg, nil), startNode(t, cfg, nil)
}

// fill copies key from a to b's store through the fill protocol.
func fill(ctx context.Context, t *testing.T, a, b *testNode, key string) (*store.Writer, error) {
	t.Helper()
	pf, err := b.OpenFill(ctx, providerOf(a), key, 0)
	if err != nil {
		t.Fatalf("OpenFill: %v", err)
	}
	defer pf.Close()
	m := pf.Manifest()
	if m.Key != key || m.Source != a.ID() || len(m.Segments) != 0 {
		t.Fatalf("fill manifest: key %q source %q segments %d", m.Key, m.Source, len(m.Segments))
	}
	w, err := b.st.Create(m)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return w, pf.Run(ctx, w)
}

func TestFillComplete(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	key := testKey("complete")
	src := makeRecording(t, a.st, key, 20*time.Second)
	if len(src.Segments) < 10 {
		t.Fatalf("test recording has only %d segments", len(src.Segments))
	}
	w, err := fill(t.Context(), t, a, b, key)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	sameSegments(t, a.st, b.st, key)
	var size uint64
	for _, si := range src.Segments {
		size += uint64(si.Size)
	}
	if in, out := b.Stats().FillBytesIn, a.Stats().FillBytesOut; in != size || out != size {
		t.Errorf("stats: %d bytes in at the copy, %d out at the source; the segments are %d", in, out, size)
	}
	if ps := b.Peers(); len(ps) != 1 || ps[0].ID != a.ID() || len(ps[0].Addrs) == 0 {
		t.Errorf("b's peers %+v, want a", ps)
	}
	got, _ := b.st.Manifest(key)
	if got.Duration != src.Duration || string(got.SDP) != string(src.SDP) {
		t.Errorf("header: duration %v want %v; sdp equal %v", got.Duration, src.Duration, string(got.SDP) == string(src.SDP))
	}
}

func TestFillResumesFromSegment(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	key := testKey("resume")
	src := makeRecording(t, a.st, key, 10*time.Second)

	// The first fill stops after 3 segments (the provider "died").
	w, err := b.st.Create(testManifest(key))
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint32(3) {
		data, si, err := a.st.SegmentSealed(key, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AppendSegmentSealed(data, si.Hash, si.Seal); err != nil {
			t.Fatal(err)
		}
	}
	pf, err := b.OpenFill(t.Context(), providerOf(a), key, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if err := pf.Run(t.Context(), w); err != nil {
		t.Fatalf("resumed Run: %v", err)
	}
	_ = w.Finish(store.StateComplete)
	sameSegments(t, a.st, b.st, key)
	if got, _ := b.st.Manifest(key); len(got.Segments) != len(src.Segments) {
		t.Errorf("%d segments, want %d", len(got.Segments), len(src.Segments))
	}

	// A writer that is not at the fill's segment is refused before anything is stored.
	w2, _ := b.st.Create(testManifest(key + "2"))
	pf2, err := b.OpenFill(t.Context(), providerOf(a), key, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer pf2.Close()
	if err := pf2.Run(t.Context(), w2); err == nil {
		t.Error("Run into a writer at segment 0 of a fill from segment 5: no error")
	}
}

// followFill is a fill from a to b of a recording that a is still filling.
type followFill struct {
	wa, wb *store.Writer
	src    *packetSource
	pf     *PeerFill
	done   chan error // Run's result
}

// startFollow records d of a new recording of key on a, and starts b's fill
// of it under ctx.
func startFollow(ctx context.Context, t *testing.T, a, b *testNode, key string, d time.Duration) *followFill {
	t.Helper()
	f := &followFill{src: &packetSource{size: 1200, rate: 250_000}, done: make(chan error, 1)}
	var err error
	if f.wa, err = a.st.Create(testManifest(key)); err != nil {
		t.Fatal(err)
	}
	record(t, f.wa, f.src, d)
	if f.pf, err = b.OpenFill(ctx, providerOf(a), key, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pf.Close)
	if f.wb, err = b.st.Create(f.pf.Manifest()); err != nil {
		t.Fatal(err)
	}
	go func() { f.done <- f.pf.Run(ctx, f.wb) }()
	return f
}

// result waits for Run's result.
func (f *followFill) result(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-f.done:
		return err
	case <-time.After(d):
		t.Fatalf("Run did not return within %v", d)
		return nil
	}
}

func TestFillFollowsFillingRecording(t *testing.T) {
	t.Parallel()
	const stall = 2 * KeepaliveInterval // margin for a loaded test machine
	a, b := startPair(t, Config{StallTimeout: stall})
	key := testKey("follow")
	f := startFollow(t.Context(), t, a, b, key, 2*time.Second)
	if st := f.pf.Manifest().State; st != store.StateFilling {
		t.Fatalf("peer state %q, want filling", st)
	}
	wa, wb, src, done := f.wa, f.wb, f.src, f.done

	// The copy keeps up with the source as it grows, then ends with it.
	for _, d := range []time.Duration{4 * time.Second, 6 * time.Second} {
		record(t, wa, src, d)
		want := len(wa.Manifest().Segments)
		testkit.Eventually(t, 10*time.Second, "the copy to follow", func() bool {
			m, _ := b.st.Manifest(key)
			return len(m.Segments) >= want
		})
		select {
		case err := <-done:
			t.Fatalf("Run returned while the source is filling: %v", err)
		default:
		}
	}
	// A source with nothing new for longer than the stall timeout: the
	// server's keep-alives hold the fill open.
	select {
	case err := <-done:
		t.Fatalf("Run returned while the source is idle: %v", err)
	case <-time.After(stall + KeepaliveInterval/2):
	}
	record(t, wa, src, 7*time.Second)
	if err := wa.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	if err := f.result(t, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	_ = wb.Finish(store.StateComplete)
	sameSegments(t, a.st, b.st, key)
}

func TestFillPartialSource(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	key := testKey("partial")
	wa, _ := a.st.Create(testManifest(key))
	record(t, wa, &packetSource{size: 1200, rate: 250_000}, 3*time.Second)
	_ = wa.Finish(store.StatePartial)
	w, err := fill(t.Context(), t, a, b, key)
	if !errors.Is(err, ErrPeerPartial) {
		t.Fatalf("Run from a partial recording: %v, want ErrPeerPartial", err)
	}
	ma, _ := a.st.Manifest(key)
	if got := len(w.Manifest().Segments); got != len(ma.Segments) {
		t.Errorf("kept %d segments, the peer had %d", got, len(ma.Segments))
	}
}

func TestFillNotProvided(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	_, err := b.OpenFill(t.Context(), providerOf(a), testKey("absent"), 0)
	if !errors.Is(err, ErrNotProvided) {
		t.Fatalf("OpenFill of a key the peer lacks: %v, want ErrNotProvided", err)
	}
	if _, err := b.OpenFill(t.Context(), providerOf(b), testKey("self"), 0); err == nil {
		t.Error("OpenFill from itself: no error")
	}
	if _, err := b.OpenFill(t.Context(), providerOf(a), "rtsp://user:secret@origin.test:554/x", 0); err == nil {
		t.Error("OpenFill with credentials in the key: no error")
	}
}

// serveCorrupt answers like a real server but flips a byte of segment bad.
func serveCorrupt(a *testNode, bad uint32) network.StreamHandler {
	return func(s network.Stream) {
		defer s.Close()
		req, err := readRequest(s)
		if err != nil {
			_ = s.Reset()
			return
		}
		m, _ := a.st.Manifest(req.Key)
		bw := bufio.NewWriter(s)
		head, _ := appendOK(nil, m)
		_, _ = bw.Write(head)
		for i := req.From; i < m.NextSegment(); i++ {
			data, si, err := a.st.SegmentSealed(req.Key, i)
			if err != nil {
				_ = s.Reset()
				return
			}
			if i == bad {
				data[len(data)/2] ^= 0xff
			}
			_, _ = bw.Write(appendSegmentHeader(nil, i, si.Hash, &si.Seal, len(data)))
			_, _ = bw.Write(data)
		}
		_, _ = bw.Write(appendEnd(nil, endOf(m)))
		_ = bw.Flush()
	}
}

func TestFillRejectsCorruptSegment(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	key := testKey("corrupt")
	makeRecording(t, a.st, key, 8*time.Second)
	const bad = 4
	a.host.SetStreamHandler(FillProtocol, serveCorrupt(a, bad))
	w, err := fill(t.Context(), t, a, b, key)
	if !errors.Is(err, ErrBadSegment) || !errors.Is(err, store.ErrHashMismatch) {
		t.Fatalf("Run with a corrupted segment: %v, want ErrBadSegment (hash mismatch)", err)
	}
	m := w.Manifest()
	if len(m.Segments) != bad {
		t.Fatalf("stored %d segments, want the %d before the bad one", len(m.Segments), bad)
	}
	for _, si := range m.Segments {
		data, h, err := b.st.Segment(key, si.Index)
		if err != nil {
			t.Fatal(err)
		}
		want, wh, _ := a.st.Segment(key, si.Index)
		if h != wh || string(data) != string(want) {
			t.Errorf("stored segment %d differs from the source", si.Index)
		}
	}
}

// serveThenStall sends the answer and n segments, then nothing.
func serveThenStall(a *testNode, n uint32, release <-chan struct{}) network.StreamHandler {
	return func(s network.Stream) {
		req, err := readRequest(s)
		if err != nil {
			_ = s.Reset()
			return
		}
		m, _ := a.st.Manifest(req.Key)
		head, _ := appendOK(nil, m)
		_, _ = s.Write(head)
		for i := req.From; i < req.From+n; i++ {
			data, si, _ := a.st.SegmentSealed(req.Key, i)
			_, _ = s.Write(append(appendSegmentHeader(nil, i, si.Hash, &si.Seal, len(data)), data...))
		}
		<-release
		_ = s.Reset()
	}
}

func TestFillStall(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{StallTimeout: minStallTimeout})
	key := testKey("stall")
	makeRecording(t, a.st, key, 6*time.Second)
	release := make(chan struct{})
	defer close(release)
	a.host.SetStreamHandler(FillProtocol, serveThenStall(a, 2, release))
	start := time.Now()
	w, err := fill(t.Context(), t, a, b, key)
	if !errors.Is(err, ErrStalled) || errors.Is(err, context.Canceled) {
		t.Fatalf("Run from a stalled peer: %v, want ErrStalled (and not a cancellation)", err)
	}
	if d := time.Since(start); d < minStallTimeout || d > 3*minStallTimeout {
		t.Errorf("stall detected after %v, StallTimeout is %v", d, minStallTimeout)
	}
	if n := len(w.Manifest().Segments); n != 2 {
		t.Errorf("kept %d segments, want the 2 received", n)
	}
}

func TestFillProviderDiesMidFill(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{}, nil)
	b := startNode(t, Config{}, nil)
	key := testKey("dies")
	// A source that is still filling, so the fill is mid-way when a dies.
	f := startFollow(t.Context(), t, a, b, key, 5*time.Second)
	wa, wb, src := f.wa, f.wb, f.src
	testkit.Eventually(t, 10*time.Second, "the first segments", func() bool { return len(wb.Manifest().Segments) >= 3 })
	if err := a.Close(); err != nil {
		t.Fatalf("closing the provider: %v", err)
	}
	if err := f.result(t, 20*time.Second); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Run after the provider died mid-fill: %v, want an error that is not a cancellation", err)
	}
	mb := wb.Manifest()
	for _, si := range mb.Segments {
		data, h, err := b.st.Segment(key, si.Index)
		if err != nil {
			t.Fatal(err)
		}
		want, wh, _ := a.st.Segment(key, si.Index)
		if h != wh || string(data) != string(want) {
			t.Errorf("segment %d differs from the source", si.Index)
		}
	}
	// The node resumes elsewhere from the next segment: here, a restarted
	// provider of the now complete source.
	record(t, wa, src, 7*time.Second)
	_ = wa.Finish(store.StateComplete)
	a2 := startNode(t, Config{}, a.st)
	pf2, err := b.OpenFill(t.Context(), providerOf(a2), key, mb.NextSegment())
	if err != nil {
		t.Fatal(err)
	}
	defer pf2.Close()
	if err := pf2.Run(t.Context(), wb); err != nil {
		t.Fatalf("resumed Run: %v", err)
	}
	_ = wb.Finish(store.StateComplete)
	sameSegments(t, a.st, b.st, key)
}

func TestFillCancel(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	key := testKey("cancel")
	ctx, cancel := context.WithCancel(t.Context())
	f := startFollow(ctx, t, a, b, key, 2*time.Second)
	testkit.Eventually(t, 10*time.Second, "the first segment", func() bool { return len(f.wb.Manifest().Segments) >= 1 })
	cancel()
	if err := f.result(t, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v, want context.Canceled", err)
	}
	// The server noticed at once (not at its next keep-alive): its handler ended.
	testkit.Eventually(t, KeepaliveInterval/2, "the server's handler to end", func() bool { return a.serving.Load() == 0 })
}

func TestFillOverEachTransport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, listen, proto string }{
		{"tcp", "/ip4/127.0.0.1/tcp/0", "/tcp/"},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1", "/quic-v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := startPair(t, Config{Listen: []string{tc.listen}})
			key := testKey(tc.name)
			makeRecording(t, a.st, key, 3*time.Second)
			w, err := fill(t.Context(), t, a, b, key)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			_ = w.Finish(store.StateComplete)
			sameSegments(t, a.st, b.st, key)
			conns := b.host.Network().ConnsToPeer(a.host.ID())
			if len(conns) == 0 || !strings.Contains(conns[0].RemoteMultiaddr().String(), tc.proto) {
				t.Errorf("connection over %v, want %s", conns, tc.proto)
			}
		})
	}
}

func TestFillServerRefusesBadRequest(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := connect(ctx, b, a); err != nil {
		t.Fatal(err)
	}
	for _, req := range [][]byte{
		{0, 0, 0, 0, 0, 0}, // empty key
		appendRequest(nil, fillRequest{Key: "rtsp://user:pw@origin.test:554/x", From: 0}),
	} {
		s, err := b.host.NewStream(ctx, a.host.ID(), FillProtocol)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(req); err != nil {
			t.Fatal(err)
		}
		_, err = readAnswer(s)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("answer to %q: %v, want ErrRefused", req, err)
		}
		_ = s.Close()
	}
}

// TestFillFromStartSurvivesPlayReclassify: a neighbour that tails a fill
// from before its origin's PLAY answer (which rewrites the manifest's
// classification reason) still verifies every seal. The reason was once in
// the signed header digest, so such a tail failed at segment 0 and
// distrusted an honest filler.
func TestFillFromStartSurvivesPlayReclassify(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	key := testKey("reclassify")
	mf := testManifest(key)
	mf.ClassReason = "SDP a=range:npt=0-8 has an end"
	wa, err := a.st.Create(mf)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := b.OpenFill(t.Context(), providerOf(a), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pf.Close)
	wb, err := b.st.Create(pf.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.Run(t.Context(), wb) }()
	if err := wa.Update(func(m *store.Manifest) { m.ClassReason = "PLAY Range npt=0-8 has an end" }); err != nil {
		t.Fatal(err)
	}
	record(t, wa, &packetSource{size: 1200, rate: 250_000}, 3*time.Second)
	if err := wa.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s")
	}
	_ = wb.Finish(store.StateComplete)
	sameSegments(t, a.st, b.st, key)
}
