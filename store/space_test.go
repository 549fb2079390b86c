package store

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

// fakeFree is a filesystem whose free space the test sets.
type fakeFree struct{ n atomic.Int64 }

func (f *fakeFree) free(string) (int64, error) { return f.n.Load(), nil }

func TestBadgerReserveFitsMinFree(t *testing.T) {
	for _, mf := range []int64{MinMinFree, 12 << 20, 64 << 20, DefaultMinFree, 100 << 30} {
		vlog, mem := badgerFileSizes(mf)
		if r := badgerReserve(vlog, mem); r > mf {
			t.Errorf("min free %d: Badger reserve %d (value log %d, memtable %d) exceeds it", mf, r, vlog, mem)
		}
	}
	if vlog, mem := badgerFileSizes(DefaultMinFree); vlog != 64<<20 || mem != 4<<20 {
		t.Errorf("default sizes: value log %d, memtable %d; want 64 MiB and 4 MiB", vlog, mem)
	}
}

// Below MinFree segments are refused and storing stops (the fill's writer
// fails, new recordings are refused); when space is back storing resumes.
func TestSpaceStopsAndResumesStoring(t *testing.T) {
	fs := &fakeFree{}
	fs.n.Store(1 << 30)
	const minFree = 16 << 20
	s, err := Open(t.TempDir(), Options{MinFree: minFree, SegmentBytes: 64 << 10, freeSpace: fs.free})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	packets := synth(defaultSpec, 4*time.Second)
	record(t, s, "rtsp://o:554/kept", packets, StateComplete)

	w, err := s.Create(Manifest{Key: "rtsp://o:554/filling", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	fs.n.Store(minFree + 10<<10) // the next 64 KiB segment would cross it
	var appendErr error
	for _, p := range packets {
		if appendErr = w.Append(p); appendErr != nil {
			break
		}
	}
	if !errors.Is(appendErr, ErrNoSpace) {
		t.Fatalf("append below the headroom: %v, want ErrNoSpace", appendErr)
	}
	if st := s.Space(); st.Storing || st.Refused == 0 || st.ReadOnly {
		t.Fatalf("space state after a refused segment: %+v", st)
	}
	if err := w.Finish(StateComplete); err == nil {
		t.Fatal("finish after a refused segment succeeded; want the recording partial")
	}
	if m, _ := s.Manifest("rtsp://o:554/filling"); m.State != StatePartial {
		t.Fatalf("refused fill is %s, want partial", m.State)
	}
	if _, err := s.Create(Manifest{Key: "rtsp://o:554/new", Tracks: avTracks()}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("create while not storing: %v, want ErrNoSpace", err)
	}
	// What is stored is still served.
	r, err := s.NewReader("rtsp://o:554/kept", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkPackets(t, readAll(t, r), packets)
	r.Close()

	fs.n.Store(minFree + minFree/8 + 1<<20)
	testkit.Eventually(t, 20*time.Second, "storing to resume", s.Storing)
	record(t, s, "rtsp://o:554/new", packets, StateComplete)
}

// A store opened with less than Badger's reserve free is read-only: it
// serves what it holds and writes nothing; it becomes writable when space
// comes back.
func TestSpaceOpensReadOnlyWhenFull(t *testing.T) {
	dir := t.TempDir()
	fs := &fakeFree{}
	fs.n.Store(1 << 30)
	opts := Options{MinFree: MinMinFree, SegmentBytes: 64 << 10, freeSpace: fs.free}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	packets := synth(defaultSpec, 3*time.Second)
	record(t, s, "rtsp://o:554/a", packets, StateComplete)
	w, err := s.Create(Manifest{Key: "rtsp://o:554/interrupted", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packets[:200] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	fs.n.Store(0)
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("open with a full disk: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if st := s.Space(); !st.ReadOnly || st.Storing {
		t.Fatalf("space state opened full: %+v", st)
	}
	r, err := s.NewReader("rtsp://o:554/a", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkPackets(t, readAll(t, r), packets)
	r.Close()
	if m, err := s.Manifest("rtsp://o:554/interrupted"); err != nil || m.State != StatePartial {
		t.Fatalf("interrupted fill read-only: %v %v, want partial", m.State, err)
	}
	if _, err := s.Create(Manifest{Key: "rtsp://o:554/b", Tracks: avTracks()}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("create read-only: %v", err)
	}
	if err := s.Delete("rtsp://o:554/a"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("delete read-only: %v", err)
	}

	fs.n.Store(1 << 30)
	testkit.Eventually(t, 20*time.Second, "the store to reopen read-write", s.Storing)
	record(t, s, "rtsp://o:554/b", packets, StateComplete)
	w, err = s.Resume("rtsp://o:554/interrupted")
	if err != nil {
		t.Fatalf("resume after reopening: %v", err)
	}
	if err := w.Finish(StatePartial); err != nil {
		t.Fatal(err)
	}
}

// The quota counts recordings being filled: a segment that nothing
// evictable could make room for is refused instead of overrunning it.
func TestQuotaRefusesFillsOverIt(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MaxBytes: 1 << 20, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	w, err := s.Create(Manifest{Key: "rtsp://o:554/big", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	var appendErr error
	for _, p := range synth(defaultSpec, 60*time.Second) {
		if appendErr = w.Append(p); appendErr != nil {
			break
		}
	}
	if !errors.Is(appendErr, ErrNoSpace) {
		t.Fatalf("filling past the quota: %v, want ErrNoSpace", appendErr)
	}
	if used, max := s.Usage(); used > max {
		t.Fatalf("usage %d over quota %d", used, max)
	}
	if s.Storing() || !s.Space().QuotaFull {
		t.Fatalf("space state with the quota full of a fill: %+v", s.Space())
	}
	_ = w.Finish(StatePartial)
	// Finished, it may be evicted: storing goes on.
	if !s.Storing() {
		t.Fatal("not storing once the quota holds only evictable recordings")
	}
}
