package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

// TestValueLogGCRunsItself: the Store's own goroutine runs value-log GC
// without anyone asking, and Close stops it.
func TestValueLogGCRunsItself(t *testing.T) {
	s, err := Open(t.TempDir(), Options{gcEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	record(t, s, "k", synth(defaultSpec, time.Second), StateComplete)
	if err := s.Delete("k"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "value-log GC passes", func() bool { return s.gcRuns.Load() >= 3 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after := s.gcRuns.Load()
	// Close waited for the goroutine: nothing runs GC on the closed DB.
	if err := s.withDB(func(*badger.DB) error { return nil }); err != ErrClosed {
		t.Fatalf("store usable after Close: %v", err)
	}
	if s.gcRuns.Load() != after {
		t.Fatal("GC ran after Close returned")
	}
}

func TestOneStorePerDir(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Open(dir, Options{}); err == nil {
		_ = s2.Close()
		t.Fatal("a second store opened the same directory")
	}
}

// TestTailWakeupLatency: a blocked reader is woken by the append itself, not
// by polling. The bound is loose (race detector, shared machine); a poll
// interval of even 10 ms would miss it.
func TestTailWakeupLatency(t *testing.T) {
	s := memStore(t, Options{})
	w, err := s.Create(Manifest{Key: "t", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StateComplete)
	r, err := s.NewReader("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan time.Time)
	go func() {
		for {
			if _, err := r.Next(context.Background()); err != nil {
				close(got)
				return
			}
			got <- time.Now()
		}
	}()
	rec := s.recs["t"]
	var lat []time.Duration
	for i, p := range synth(defaultSpec, 2*time.Second)[:100] {
		testkit.Eventually(t, 20*time.Second, "reader blocked", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.wait != nil
		})
		t0 := time.Now()
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		at, ok := <-got
		if !ok {
			t.Fatalf("reader stopped at packet %d", i)
		}
		lat = append(lat, at.Sub(t0))
	}
	slices.Sort(lat)
	if med := lat[len(lat)/2]; med > 5*time.Millisecond {
		t.Fatalf("median wake-up %v", med)
	}
	// Close from another goroutine ends the blocked Next.
	_ = r.Close()
	if _, ok := <-got; ok {
		t.Fatal("packet after Close")
	}
}

// TestHeaderStaysSmall: a seal rewrites the header, which must not grow with
// the number of segments (segment infos have their own keys).
func TestHeaderStaysSmall(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 4 << 10})
	w, err := s.Create(Manifest{Key: "h", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	size := func() int {
		if err := w.sync(); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(headerKey("h"))
			if err != nil {
				return err
			}
			n = int(item.ValueSize())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	pk := synth(defaultSpec, 10*time.Second)
	for _, p := range pk[:50] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	small := size()
	for _, p := range pk[50:] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if m := w.Manifest(); len(m.Segments) < 200 {
		t.Fatalf("test needs many segments, has %d", len(m.Segments))
	}
	if big := size(); big > small+64 {
		t.Fatalf("header grew from %d to %d bytes with the number of segments", small, big)
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
}

// TestAppendSegmentLiveStart: an empty live recording takes a peer's window
// starting at any index; readers opened before land on it.
func TestAppendSegmentLiveStart(t *testing.T) {
	src := memStore(t, Options{SegmentBytes: 512 << 10, SegmentSpan: time.Second, LiveWindow: 3 * time.Second})
	sw, err := src.Create(Manifest{Key: "l", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range synth(defaultSpec, 10*time.Second) {
		if err := sw.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.sync(); err != nil {
		t.Fatal(err)
	}
	m := sw.Manifest()
	if m.Segments[0].Index == 0 {
		t.Fatal("test setup: window still starts at 0")
	}
	dst := memStore(t, Options{LiveWindow: 3 * time.Second})
	w, err := dst.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	r, err := dst.NewReader("l", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, si := range m.Segments {
		data, h, err := src.Segment("l", si.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AppendSegment(data, h); err != nil {
			t.Fatalf("segment %d: %v", si.Index, err)
		}
	}
	p, err := r.Next(context.Background())
	if err != nil || p.TT != m.Segments[0].FirstTT {
		t.Fatalf("reader opened on the empty recording: tt %v err %v, want %v", p.TT, err, m.Segments[0].FirstTT)
	}
	got := w.Manifest()
	if len(got.Segments) != len(m.Segments) || got.Segments[0].Index != m.Segments[0].Index {
		t.Fatalf("window %d segments from %d", len(got.Segments), got.Segments[0].Index)
	}
}

// smallVlog makes value-log files 1 MiB so that GC can give space back in a
// small test.
func smallVlog(o *badger.Options) { o.ValueLogFileSize = 1 << 20 }

func vlogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// appendMB appends about mb MiB of 2 Mbit/s-like packets to w.
func appendMB(t *testing.T, w *Writer, feed *benchFeed, mb int) {
	t.Helper()
	for n := 0; n < mb<<20; {
		if err := feed.nextFrame(func(p Packet) error { n += len(p.RTP); return w.Append(p) }); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeleteReclaimsDisk: after deleting recordings, the Store's own GC gives
// their value-log space back (deletion drops keys by prefix, so the value log
// learns at once which space is garbage).
func TestDeleteReclaimsDisk(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 64 << 10, gcEvery: 10 * time.Millisecond, tune: smallVlog})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	feed := newBenchFeed(8, 400)
	for _, k := range []string{"a", "b", "c"} {
		w, err := s.Create(Manifest{Key: k, Tracks: avTracks()})
		if err != nil {
			t.Fatal(err)
		}
		appendMB(t, w, feed, 6)
		if err := w.Finish(StateComplete); err != nil {
			t.Fatal(err)
		}
	}
	full := vlogBytes(t, dir)
	if full < 18<<20 {
		t.Fatalf("test setup: value log holds %d bytes", full)
	}
	for _, k := range []string{"a", "b"} {
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 20*time.Second, "value log to shrink", func() bool { return vlogBytes(t, dir) < 10<<20 })
	r, err := s.NewReader("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n := len(readAll(t, r)); n == 0 {
		t.Fatal("kept recording unreadable after GC")
	}
}

// TestLiveWindowReclaimsDisk: a long live recording does not grow the value
// log beyond its window (plus a block of 256 segments and GC slack).
func TestLiveWindowReclaimsDisk(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 16 << 10, LiveWindow: time.Second, gcEvery: 10 * time.Millisecond, tune: smallVlog})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.Create(Manifest{Key: "live", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	feed := newBenchFeed(8, 400)
	appendMB(t, w, feed, 24) // ~1500 segments of 16 KiB; the window keeps ~1 s (250 KB)
	if err := w.sync(); err != nil {
		t.Fatal(err)
	}
	if m := w.Manifest(); m.Segments[0].Index < 4<<blockShift {
		t.Fatalf("test setup: window starts at %d", m.Segments[0].Index)
	}
	testkit.Eventually(t, 20*time.Second, "value log to shrink", func() bool { return vlogBytes(t, dir) < 12<<20 })
	r, err := s.NewReader("live", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCloseWakesReaders: Close ends blocked readers and waiters with ErrClosed.
func TestCloseWakesReaders(t *testing.T) {
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(Manifest{Key: "k", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { _, err := r.Next(context.Background()); errs <- err }()
	go func() { _, err := s.WaitSegment(context.Background(), "k", 0); errs <- err }()
	testkit.Eventually(t, 20*time.Second, "reader and waiter blocked", func() bool {
		rec := s.recs["k"]
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.wait != nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked call after Close: %v", err)
		}
	}
	if err := w.Append(Packet{RTP: []byte{1}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := s.List(); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close: %v", err)
	}
}
