package store

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// commitGate holds chosen segments' commits after Badger wrote them
// (Options.afterCommit) until the test lets each go, with the error the
// test chooses.
type commitGate struct {
	mu   sync.Mutex
	held map[uint32]chan error // a held commit waits for its outcome here
	seen map[uint32]chan struct{}
}

func newCommitGate(hold ...uint32) *commitGate {
	g := &commitGate{held: map[uint32]chan error{}, seen: map[uint32]chan struct{}{}}
	for _, i := range hold {
		g.held[i] = make(chan error, 1)
		g.seen[i] = make(chan struct{})
	}
	return g
}

func (g *commitGate) afterCommit(_ string, idx uint32, err error) error {
	g.mu.Lock()
	out, held := g.held[idx]
	seen := g.seen[idx]
	g.mu.Unlock()
	if !held {
		return err
	}
	close(seen)
	if e := <-out; e != nil {
		return e
	}
	return err
}

// reached waits until segment idx's commit was written and is held.
func (g *commitGate) reached(t *testing.T, idx uint32) {
	t.Helper()
	select {
	case <-g.seen[idx]:
	case <-time.After(10 * time.Second):
		t.Fatalf("segment %d's commit never came", idx)
	}
}

func (g *commitGate) release(idx uint32, err error) { g.held[idx] <- err }

// appendSegs appends segments from..to-1 of src's "k" to w.
func appendSegs(t *testing.T, src *Store, w *Writer, from, to uint32) {
	t.Helper()
	for i := from; i < to; i++ {
		data, h, err := src.Segment("k", i)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AppendSegment(data, h); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
}

// TestCommitDepth: a writer with a commit depth of 4 has up to 4 segment
// commits in flight, readers read them meanwhile, the manifest shows each
// once applied, in order, whatever order Badger's callbacks come back in,
// and the recording is whole on disk.
func TestCommitDepth(t *testing.T) {
	src, pk, m := smallSegments(t)
	if len(m.Segments) < 8 {
		t.Fatalf("%d segments in the source", len(m.Segments))
	}
	dir := t.TempDir()
	g := newCommitGate(0, 1, 2, 3)
	dst, err := Open(dir, Options{afterCommit: g.afterCommit})
	if err != nil {
		t.Fatal(err)
	}
	w, err := dst.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	w.SetCommitDepth(4)
	appendSegs(t, src, w, 0, 4) // returns with 4 commits in flight
	for i := range uint32(4) {
		g.reached(t, i)
	}
	if got := w.Manifest(); len(got.Segments) != 0 {
		t.Fatalf("the manifest shows %d segments whose commits are held", len(got.Segments))
	}
	// A reader reads the 4 pending segments.
	r, err := dst.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	var inFour int
	for _, si := range m.Segments[:4] {
		inFour += int(si.Packets)
	}
	for i := range inFour {
		p, err := r.Next(t.Context())
		if err != nil {
			t.Fatalf("pending packet %d: %v", i, err)
		}
		if !samePacket(p, pk[i]) {
			t.Fatalf("pending packet %d differs", i)
		}
	}
	r.Close()

	// A fifth waits for a slot.
	fifth := make(chan error, 1)
	go func() {
		data, h, err := src.Segment("k", 4)
		if err == nil {
			err = w.AppendSegment(data, h)
		}
		fifth <- err
	}()
	// Badger's callbacks come back last first: none is applied before
	// segment 0's.
	for _, i := range []uint32{3, 2, 1} {
		g.release(i, nil)
	}
	if got := w.Manifest(); len(got.Segments) != 0 {
		t.Fatalf("segments applied before segment 0: %d", len(got.Segments))
	}
	select {
	case err := <-fifth:
		t.Fatalf("a fifth commit went in flight with 4 in flight (err %v)", err)
	default:
	}
	g.release(0, nil)
	if err := <-fifth; err != nil {
		t.Fatal(err)
	}
	appendSegs(t, src, w, 5, uint32(len(m.Segments)))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := w.Manifest(); len(got.Segments) != len(m.Segments) {
		t.Fatalf("after Flush: %d segments, want %d", len(got.Segments), len(m.Segments))
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}

	again, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	got, err := again.Manifest("k")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateComplete || len(got.Segments) != len(m.Segments) {
		t.Fatalf("reopened: %s, %d segments, want complete, %d", got.State, len(got.Segments), len(m.Segments))
	}
	for i := range got.Segments {
		if got.Segments[i].Hash != m.Segments[i].Hash {
			t.Fatalf("reopened: segment %d's hash differs", i)
		}
	}
	r, err = again.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkPackets(t, readAll(t, r), pk)
}

// TestCommitDepthFailure: with commits in flight, one fails after Badger
// wrote the ones after it. None of them is applied; Flush and Finish
// report it; the recording is partial up to the failed segment, on disk
// too (Finish writes its header over theirs), and a later fill resumes it
// there and completes it.
func TestCommitDepthFailure(t *testing.T) {
	src, pk, m := smallSegments(t)
	if len(m.Segments) < 10 {
		t.Fatalf("%d segments in the source", len(m.Segments))
	}
	dir := t.TempDir()
	g := newCommitGate(5, 6, 7)
	dst, err := Open(dir, Options{afterCommit: g.afterCommit})
	if err != nil {
		t.Fatal(err)
	}
	w, err := dst.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	w.SetCommitDepth(4)
	appendSegs(t, src, w, 0, 8)
	for _, i := range []uint32{5, 6, 7} {
		g.reached(t, i) // all three written by Badger
	}
	injected := errors.New("injected: the disk went away")
	g.release(7, nil)
	g.release(6, nil)
	g.release(5, injected)
	if err := w.Flush(); !errors.Is(err, injected) {
		t.Fatalf("Flush after a failed commit: %v", err)
	}
	if err := w.AppendSegment(m.Segments[0].Hash[:], m.Segments[0].Hash); err == nil {
		t.Fatal("an append after a failed commit was taken")
	}
	if got := w.Manifest(); len(got.Segments) != 5 {
		t.Fatalf("applied: %d segments, want the 5 before the failed one", len(got.Segments))
	}
	if err := w.Finish(StateComplete); !errors.Is(err, injected) {
		t.Fatalf("Finish after a failed commit: %v", err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}

	again, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	got, err := again.Manifest("k")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StatePartial || len(got.Segments) != 5 {
		t.Fatalf("reopened: %s with %d segments, want partial with 5", got.State, len(got.Segments))
	}
	var inFive int
	for _, si := range m.Segments[:5] {
		inFive += int(si.Packets)
	}
	r, err := again.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkPackets(t, readAll(t, r), pk[:inFive])
	r.Close()

	// The repair: a fill resumes at segment 5, over the keys segments 6
	// and 7 left.
	w, err = again.Resume("k")
	if err != nil {
		t.Fatal(err)
	}
	w.SetCommitDepth(4)
	appendSegs(t, src, w, 5, uint32(len(m.Segments)))
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	r, err = again.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkPackets(t, readAll(t, r), pk)
}

// TestCommitDepthSpare: a writer with several commits in flight gives each
// segment's bytes back once, after its commit was applied, and never one
// a reader took; readers read the segments as appended though the caller
// overwrites what it got back at once.
func TestCommitDepthSpare(t *testing.T) {
	src, pk, m := smallSegments(t)
	if len(m.Segments) < 8 {
		t.Fatalf("%d segments in the source", len(m.Segments))
	}
	dst := memStore(t, Options{})
	w, err := dst.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	w.SetCommitDepth(4)
	back := map[*byte]int{}
	w.SetSpare(func(b []byte) {
		back[&b[0]]++
		clear(b) // the caller reads the next segment into it
	})
	appendOwned := func(from, to uint32) {
		for i := from; i < to; i++ {
			data, h, err := src.Segment("k", i)
			if err != nil {
				t.Fatal(err)
			}
			c, err := w.CheckOwned(data, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.AppendChecked(c, Seal{}); err != nil {
				t.Fatalf("segment %d: %v", i, err)
			}
		}
	}
	appendOwned(0, 3)
	// From here a reader is open: the segments committed from now on go to
	// the segment cache and stay the store's.
	r, err := dst.NewReaderAt("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	appendOwned(3, uint32(len(m.Segments)))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 {
		t.Fatalf("%d buffers back, want the 3 segments stored before the reader came", len(back))
	}
	for p, n := range back {
		if n != 1 {
			t.Fatalf("buffer %p given back %d times", p, n)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	checkPackets(t, readAll(t, r), pk)
}
