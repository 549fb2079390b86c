package mesh

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/store"
)

// liveRecording starts a live recording of key on a, recorded for d.
func liveRecording(t *testing.T, a *testNode, key string, ps *packetSource, d time.Duration) *store.Writer {
	t.Helper()
	m := testManifest(key)
	m.Live, m.Source = true, "origin"
	w, err := a.st.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Finish(store.StatePartial) })
	record(t, w, ps, d)
	ps.goLive()
	return w
}

// openRelay opens b's fill of key from a, from segment 0, and b's
// recording for it.
func openRelay(t *testing.T, a, b *testNode, key string) (*PeerFill, *store.Writer) {
	t.Helper()
	pf, err := b.OpenFill(t.Context(), providerOf(a), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pf.Close)
	w, err := b.st.Create(pf.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	return pf, w
}

// relayCaughtUp records a live stream on one node for a second and relays
// it to another under ctx until the relay holds all of it. done has Run's
// result; the relay's writer is finished when the test ends.
func relayCaughtUp(t *testing.T, ctx context.Context, name string) (wa, wb *store.Writer, done <-chan error) {
	t.Helper()
	a, b := startPair(t, Config{})
	key := testKey(name)
	wa = liveRecording(t, a, key, &packetSource{size: 1200, rate: 250_000}, time.Second)
	_, lastPN, _ := wa.Last()
	pf, wb := openRelay(t, a, b, key)
	t.Cleanup(func() { _ = wb.Finish(store.StatePartial) })
	ran := make(chan error, 1)
	go func() { ran <- pf.Run(ctx, wb) }()
	caughtUp(t, wb, lastPN)
	return wa, wb, ran
}

// caughtUp waits until w holds the packet numbered pn.
func caughtUp(t *testing.T, w *store.Writer, pn uint64) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "the relay to hold the source's last packet", func() bool {
		_, last, ok := w.Last()
		return ok && last >= pn
	})
}

// TestLiveTailRelaysOpenSegment relays a live recording: the sealed window,
// then the open segment's packets as they are appended, so the relay holds
// every packet of its source, the unsealed ones included.
func TestLiveTailRelaysOpenSegment(t *testing.T) {
	t.Parallel()
	var serving atomic.Int32
	cfg := Config{ServingLive: func(string) func() {
		serving.Add(1)
		return func() { serving.Add(-1) }
	}}
	a, b := startNode(t, cfg, nil), startNode(t, Config{}, nil)
	key := testKey("live-tail")
	ps := &packetSource{size: 1200, rate: 250_000}
	wa := liveRecording(t, a, key, ps, 2*time.Second)
	_, lastPN, _ := wa.Last()
	m := wa.Manifest()
	sealedUpTo := m.Segments[len(m.Segments)-1].FirstPN + uint64(m.Segments[len(m.Segments)-1].Packets) - 1
	if lastPN <= sealedUpTo {
		t.Fatalf("the source's open segment is empty (last pn %d, sealed up to %d): the test proves nothing", lastPN, sealedUpTo)
	}

	pf, wb := openRelay(t, a, b, key)
	done := make(chan error, 1)
	// Reads of the relay's recording end when its Run does: a relay that
	// left its source would leave them waiting for packets that never come.
	relaying, relayEnded := context.WithCancel(t.Context())
	defer relayEnded()
	go func() {
		done <- pf.Run(t.Context(), wb)
		relayEnded()
	}()
	caughtUp(t, wb, lastPN)
	if n := serving.Load(); n != 1 {
		t.Fatalf("ServingLive counts %d relays, want 1", n)
	}

	// A packet appended now reaches the relay without waiting for a seal.
	mb := wb.Manifest()
	rb, err := b.st.NewReaderAt(key, mb.Segments[len(mb.Segments)-1].Index+1)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	var lag []time.Duration
	for range 20 {
		p := ps.next()
		start := time.Now()
		if err := wa.Append(p); err != nil {
			t.Fatal(err)
		}
		for {
			got, err := rb.Next(relaying)
			if err != nil {
				if relaying.Err() != nil {
					err = <-done
				}
				t.Fatalf("reading packet %d at the relay: %v", p.PN, err)
			}
			if got.PN == p.PN {
				break
			}
		}
		lag = append(lag, time.Since(start))
	}
	t.Logf("source append → readable at the relay, 20 packets: %v", lag)

	if err := wa.Finish(store.StatePartial); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrPeerPartial) {
			t.Fatalf("Run after the source ended: %v, want ErrPeerPartial", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the source ended")
	}
	testkit.Eventually(t, 5*time.Second, "ServingLive's done", func() bool { return serving.Load() == 0 })
	if err := wb.Finish(store.StatePartial); err != nil {
		t.Fatal(err)
	}
	samePackets(t, a.st, b.st, key)
}

// samePackets fails t unless b's recording of key holds exactly a's packets.
func samePackets(t *testing.T, a, b *store.Store, key string) {
	t.Helper()
	ma, err := a.Manifest(key)
	if err != nil {
		t.Fatal(err)
	}
	want := readPackets(t, a, key, ma.Segments[0].Index)
	got := readPackets(t, b, key, 0)
	if len(got) != len(want) {
		t.Fatalf("relay holds %d packets, the source %d", len(got), len(want))
	}
	for i := range got {
		if got[i].PN != want[i].PN || got[i].TT != want[i].TT || string(got[i].RTP) != string(want[i].RTP) {
			t.Fatalf("packet %d: pn %d tt %v, want pn %d tt %v", i, got[i].PN, got[i].TT, want[i].PN, want[i].TT)
		}
	}
}

func readPackets(t *testing.T, st *store.Store, key string, from uint32) []store.Packet {
	t.Helper()
	m, err := st.Manifest(key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.NewReaderAt(key, max(from, m.Segments[0].Index))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []store.Packet
	for {
		p, err := r.Next(t.Context())
		if err != nil {
			return out
		}
		p.RTP = append([]byte(nil), p.RTP...)
		out = append(out, p)
	}
}

// TestLiveEdgeFromNewSource: a relay that already holds the start of a live
// stream asks a new source for its live edge and gets the packets it lacks,
// with no duplicates.
func TestLiveEdgeFromNewSource(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	key := testKey("live-edge")
	wa := liveRecording(t, a, key, &packetSource{size: 1200, rate: 250_000}, 2*time.Second)
	_, lastPN, _ := wa.Last()

	// b held the stream up to 1.95 s (from a source that died).
	wb, err := b.st.Create(wa.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	record(t, wb, &packetSource{size: 1200, rate: 250_000}, 1950*time.Millisecond)
	_, held, _ := wb.Last()

	pf, err := b.OpenFill(t.Context(), providerOf(a), key, FromLiveEdge)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- pf.Run(ctx, wb) }()
	caughtUp(t, wb, lastPN)
	cancel()
	<-done
	if err := wb.Finish(store.StatePartial); err != nil {
		t.Fatal(err)
	}
	got := readPackets(t, b.st, key, 0)
	for i := 1; i < len(got); i++ {
		if got[i].PN != got[i-1].PN+1 {
			t.Fatalf("after pn %d (held up to %d) came pn %d", got[i-1].PN, held, got[i].PN)
		}
	}
	if last := got[len(got)-1].PN; last != lastPN {
		t.Fatalf("last pn %d, want %d", last, lastPN)
	}
}

// TestLiveRelayRefusals: a live edge of a recording that is not live, and a
// live recording between two upstreams (Source empty), are unavailable.
func TestLiveRelayRefusals(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	vod := testKey("vod")
	makeRecording(t, a.st, vod, time.Second)
	if _, err := b.OpenFill(t.Context(), providerOf(a), vod, FromLiveEdge); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("live edge of a VOD recording: %v, want ErrUnavailable", err)
	}
	key := testKey("between")
	wa := liveRecording(t, a, key, &packetSource{size: 1200, rate: 250_000}, time.Second)
	if err := wa.Update(func(m *store.Manifest) { m.Source = "" }); err != nil {
		t.Fatal(err)
	}
	for _, from := range []uint32{0, FromLiveEdge} {
		if _, err := b.OpenFill(t.Context(), providerOf(a), key, from); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("from %d, source between upstreams: %v, want ErrUnavailable", from, err)
		}
	}
}

// TestLiveLagLeavesSlowSource: packets that come later and later than their
// transmit times say end the fill with ErrBehind once LiveBehindLimit late;
// an early burst (the open segment's backlog) and jitter do not.
func TestLiveLagLeavesSlowSource(t *testing.T) {
	var l liveLag
	start := time.Unix(1000, 0)
	// A 100 ms backlog arrives at once, then packets at their pace with
	// 30 ms of jitter.
	for i := range 10 {
		if err := l.check(time.Duration(i)*10*time.Millisecond, start); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1000 {
		tt := 100*time.Millisecond + time.Duration(i)*10*time.Millisecond
		jitter := time.Duration(i%4) * 10 * time.Millisecond
		if err := l.check(tt, start.Add(tt+jitter)); err != nil {
			t.Fatalf("on pace, packet %d: %v", i, err)
		}
	}
	// Then the source runs at half speed: 2.1 s late after 4.2 s of media.
	base := 10100 * time.Millisecond
	var err error
	for i := 0; err == nil && i < 1000; i++ {
		tt := base + time.Duration(i)*10*time.Millisecond
		err = l.check(tt, start.Add(base+time.Duration(i)*20*time.Millisecond))
	}
	if !errors.Is(err, ErrBehind) {
		t.Fatalf("a source at half speed: %v, want ErrBehind", err)
	}
}

// TestLiveEndedAtOrigin: a source whose origin ended the live stream sends
// the end frame with state 3; the relay's Run ends cleanly and marks its
// recording ended too.
func TestLiveEndedAtOrigin(t *testing.T) {
	t.Parallel()
	wa, wb, done := relayCaughtUp(t, t.Context(), "live-ended")
	if err := wa.Update(func(m *store.Manifest) { m.Ended = true }); err != nil {
		t.Fatal(err)
	}
	if err := wa.Finish(store.StatePartial); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after the origin ended the stream: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if !wb.Manifest().Ended {
		t.Fatal("the relay's recording is not marked ended")
	}
}

// TestLiveRelayCarriesClocks: a live track's RTP↔NTP mapping (from its
// origin's sender reports) reaches a relay in the manifest when it is
// known at the start, and in a clock frame when it changes later.
func TestLiveRelayCarriesClocks(t *testing.T) {
	t.Parallel()
	a, b := startNode(t, Config{}, nil), startNode(t, Config{}, nil)
	key := testKey("live-clock")
	ps := &packetSource{size: 1200, rate: 250_000}
	wa := liveRecording(t, a, key, ps, time.Second)
	first := store.Clock{RTP: 1234, NTP: time.Date(2026, 12, 1, 15, 0, 0, 123456789, time.UTC)}
	if err := wa.SetClock(0, first); err != nil {
		t.Fatal(err)
	}
	pf, wb := openRelay(t, a, b, key)
	if got := wb.Manifest().Tracks[0].Clock; got.RTP != first.RTP || !got.NTP.Equal(first.NTP) {
		t.Fatalf("relay's clock from the manifest: %+v, want %+v", got, first)
	}
	done := make(chan error, 1)
	go func() { done <- pf.Run(t.Context(), wb) }()
	_, lastPN, _ := wa.Last()
	caughtUp(t, wb, lastPN)

	later := store.Clock{RTP: 991234, NTP: first.NTP.Add(11 * time.Second)}
	if err := wa.SetClock(0, later); err != nil {
		t.Fatal(err)
	}
	p := ps.next()
	if err := wa.Append(p); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, wb, p.PN)
	if got := wb.Manifest().Tracks[0].Clock; got.RTP != later.RTP || !got.NTP.Equal(later.NTP) {
		t.Fatalf("relay's clock after a clock frame: %+v, want %+v", got, later)
	}
	if err := wa.Finish(store.StatePartial); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrPeerPartial) {
		t.Fatalf("Run: %v", err)
	}
	_ = wb.Finish(store.StatePartial)
}

// TestLiveRelayStoppedByClient: a relay whose node stops it (its players
// left) returns the reason it was given, not what the reset it caused made
// of the stream (a reset, or an EOF read as a protocol violation).
func TestLiveRelayStoppedByClient(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(t.Context())
	_, _, done := relayCaughtUp(t, ctx, "live-stopped")
	idle := errors.New("no players left")
	cancel(idle)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, idle) || errors.Is(err, ErrProtocol) ||
			strings.Contains(err.Error(), "reset") {
			t.Fatalf("Run stopped by its context: %v, want context.Canceled and the cause alone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestLiveCheckpointsPassedOn: a live stream relayed over two hops (A, the
// node that pulls it from its origin, to B to C): every packet C stores
// past the sealed segments is named by a checkpoint that A signed, which B
// passed on unchanged (what B sealed before C reached it comes to C as
// segments, sealed by B), and the packets are A's.
func TestLiveCheckpointsPassedOn(t *testing.T) {
	t.Parallel()
	a, b, c := startNode(t, Config{}, nil), startNode(t, Config{}, nil), startNode(t, Config{}, nil)
	key := testKey("live-hops")
	ps := &packetSource{size: 1200, rate: 250_000}
	wa := liveRecording(t, a, key, ps, 1500*time.Millisecond)
	pfb, wb := openRelay(t, a, b, key)
	t.Cleanup(func() { _ = wb.Finish(store.StatePartial) })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var runs sync.WaitGroup
	defer runs.Wait()
	defer cancel()
	runs.Go(func() { _ = pfb.Run(ctx, wb) })
	// B has stored A's sealed segments as segments (B vouches for their
	// packets itself when it relays them as packets) and A's open one as
	// packets, with A's checkpoints.
	_, lastPN, _ := wa.Last()
	caughtUp(t, wb, lastPN)
	pfc, wc := openRelay(t, b, c, key)
	t.Cleanup(func() { _ = wc.Finish(store.StatePartial) })
	runs.Go(func() { _ = pfc.Run(ctx, wc) })
	for range 300 { // a little more than a second of packets, after both joined
		if err := wa.Append(ps.next()); err != nil {
			t.Fatal(err)
		}
	}
	_, lastPN, _ = wa.Last()
	caughtUp(t, wc, lastPN)

	named, signers := checkpointSigners(c, key)
	if named == 0 || len(signers) != 1 || signers[a.ID()] == 0 {
		t.Fatalf("C holds checkpoints naming %d packets, by %v; want some, all by A (%s)", named, signers, a.ID())
	}
	cancel()
	runs.Wait()
	for _, w := range []*store.Writer{wa, wc} {
		if err := w.Finish(store.StatePartial); err != nil {
			t.Fatal(err)
		}
	}
	samePackets(t, a.st, c.st, key)
}

// checkpointSigners is how many packets of key the checkpoints n keeps to
// pass on name, and how many of them each signer signed.
func checkpointSigners(n *testNode, key string) (named int, signers map[string]int) {
	n.checkpoints.mu.Lock()
	defer n.checkpoints.mu.Unlock()
	signers = map[string]int{}
	if k := n.checkpoints.keys[key]; k != nil {
		named = len(k.byPN)
		for _, cp := range k.byPN {
			signers[cp.signer.String()]++
		}
	}
	return named, signers
}

// TestCheckpointPace: a server signs the packets it sent at a flush, but
// not twice within CheckpointEvery, and says when the next is due; the end
// of the stream (all) signs at once.
func TestCheckpointPace(t *testing.T) {
	a := startNode(t, Config{}, nil)
	s := &liveSigner{m: a.Mesh, key: testKey("pace")}
	t0 := time.Unix(1000, 0)
	if d := s.due(t0); d != 0 {
		t.Fatalf("due with nothing pending: %v", d)
	}
	s.pending = append(s.pending, checkpointEntry{PN: 1})
	if b := s.sign(nil, t0, false); len(b) == 0 || len(s.pending) != 0 {
		t.Fatalf("the first checkpoint: %d bytes, %d pending", len(b), len(s.pending))
	}
	s.pending = append(s.pending, checkpointEntry{PN: 2})
	at := t0.Add(CheckpointEvery / 5)
	if b := s.sign(nil, at, false); len(b) != 0 {
		t.Fatal("a second checkpoint within CheckpointEvery")
	}
	if d := s.due(at); d != CheckpointEvery*4/5 {
		t.Fatalf("the next due in %v, want %v", d, CheckpointEvery*4/5)
	}
	if b := s.sign(nil, t0.Add(CheckpointEvery), false); len(b) != checkpointHeaderLen+checkpointEntryLen {
		t.Fatalf("the checkpoint due: %d bytes", len(b))
	}
	s.pending = append(s.pending, checkpointEntry{PN: 3})
	if b := s.sign(nil, t0.Add(CheckpointEvery), true); len(b) == 0 {
		t.Fatal("the end's checkpoint waited")
	}
}

// TestTailFlushesCheckpointDueAfterFlush: a checkpoint that came due
// between a tail's flush (which found it not yet due) and its wait is
// flushed at once, not at the next packet or keepalive: a client holds
// the packets it names for CheckpointWait only (a relayed fill failed
// with "no checkpoint named it within 1s" when the flush's write took
// the rest of CheckpointEvery).
func TestTailFlushesCheckpointDueAfterFlush(t *testing.T) {
	st := openStore(t)
	key := testKey("due-after-flush")
	w, err := st.Create(testManifest(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Finish(store.StatePartial) })
	record(t, w, &packetSource{size: 1200, rate: 250_000}, 10*time.Millisecond)
	r, err := st.NewReaderAt(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		if _, err := r.TryNext(); errors.Is(err, store.ErrWouldBlock) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	flushes := make(chan struct{}, 8)
	var dues atomic.Int32
	tail := &tailFlusher{bw: bufio.NewWriter(io.Discard),
		flush: func() error { flushes <- struct{}{}; return nil },
		// Due by the time the first flush returns; signed by the second.
		due: func() time.Duration {
			if dues.Add(1) == 1 {
				return -1
			}
			return 0
		}}
	ctx, cancel := context.WithCancel(t.Context())
	ended := make(chan error, 1)
	go func() {
		_, err := tail.next(ctx, r, time.Minute)
		ended <- err
	}()
	defer func() {
		cancel()
		<-ended
	}()
	for i := range 2 {
		select {
		case <-flushes:
		case err := <-ended:
			t.Fatalf("next ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("flush %d: none within 10s (the tail waits for the next packet or keepalive)", i+1)
		}
	}
}
