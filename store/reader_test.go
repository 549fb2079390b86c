package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// TestTailOpenSegment: packets of the unsealed segment reach a blocked reader
// at once, Finish ends it with io.EOF, and ctx ends a wait.
func TestTailOpenSegment(t *testing.T) {
	s := memStore(t, Options{})
	w, err := s.Create(Manifest{Key: "k", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if _, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty recording: %v, want deadline", err)
	}
	cancel()

	got := make(chan Packet)
	errc := make(chan error, 1)
	go func() {
		for {
			p, err := r.Next(context.Background())
			if err != nil {
				errc <- err
				return
			}
			p.RTP = append([]byte(nil), p.RTP...)
			got <- p
		}
	}()
	want := synth(defaultSpec, 2*time.Second)
	for i, p := range want[:10] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-got:
			if !samePacket(g, p) {
				t.Fatalf("packet %d differs", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("packet %d of the open segment not delivered", i)
		}
	}
	if m := w.Manifest(); len(m.Segments) != 0 {
		t.Fatalf("test expects an unsealed segment, have %d sealed", len(m.Segments))
	}
	for _, p := range want[10:] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		if g := <-got; !samePacket(g, p) {
			t.Fatalf("pn %d differs", p.PN)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, io.EOF) {
		t.Fatalf("after Finish: %v, want EOF", err)
	}
}

func TestSeekVideo(t *testing.T) {
	// Segments seal by time only: segment n holds [n s, n+1 s). Key frames
	// every 2 s. 16..16.5 s stays in the open segment.
	s := memStore(t, Options{SegmentBytes: 512 << 10, SegmentSpan: time.Second})
	pk := synth(defaultSpec, 16500*time.Millisecond)
	w, err := s.Create(Manifest{Key: "v", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StateComplete)
	for _, p := range pk {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.sync(); err != nil {
		t.Fatal(err)
	}
	if m := w.Manifest(); len(m.Segments) != 16 || m.Segments[15].LastTT >= 16*time.Second {
		t.Fatalf("test setup: %d segments", len(m.Segments))
	}
	for _, tc := range []struct {
		from, key time.Duration
	}{
		{0, 0}, {-time.Second, 0}, {time.Second, 0}, {2 * time.Second, 2 * time.Second},
		{3999 * time.Millisecond, 2 * time.Second}, {4 * time.Second, 4 * time.Second},
		{9500 * time.Millisecond, 8 * time.Second}, {15500 * time.Millisecond, 14 * time.Second},
		{16 * time.Second, 16 * time.Second}, {16200 * time.Millisecond, 16 * time.Second},
		{time.Hour, 16 * time.Second},
	} {
		t.Run(fmt.Sprint(tc.from), func(t *testing.T) {
			r, err := s.NewReader("v", tc.from)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			p, err := r.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if p.Flags&FlagKeyStart == 0 || p.TT != tc.key {
				t.Fatalf("from %v: landed on tt %v flags %d, want key start at %v", tc.from, p.TT, p.Flags, tc.key)
			}
			// The following packets are the log in order.
			q, err := r.Next(context.Background())
			if err != nil || q.PN != p.PN+1 {
				t.Fatalf("next: pn %d err %v, want %d", q.PN, err, p.PN+1)
			}
		})
	}
}

func TestSeekNoKeyBefore(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 16 << 10})
	pk := synth(defaultSpec, 6*time.Second)
	record(t, s, "late", pk[200:], StateComplete) // starts at 1.6 s, mid-GOP; first key at 2 s
	r, err := s.NewReader("late", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := r.Next(context.Background())
	if err != nil || p.Flags&FlagKeyStart == 0 || p.TT != 2*time.Second {
		t.Fatalf("got tt %v flags %d err %v, want the first key frame at 2s", p.TT, p.Flags, err)
	}
}

// TestReadFromStartKeepsLeadingAudio: an origin often sends an audio packet
// or two before the first video frame; a read from the start of a stored
// recording begins with them, as a play of the origin does, and a read from
// later still begins at a key frame.
func TestReadFromStartKeepsLeadingAudio(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 16 << 10})
	spec := defaultSpec
	spec.audio = true
	pk := synth(spec, 3*time.Second)
	lead := []Packet{
		{Track: 1, TT: 0, RTP: rtpFor(1000, 200)},
		{Track: 1, TT: 10 * time.Millisecond, RTP: rtpFor(1001, 200)},
	}
	all := append(lead, pk...)
	for i := range all {
		all[i].PN = uint64(i)
	}
	record(t, s, "lead", all, StateComplete)
	r, err := s.NewReader("lead", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	_ = r.Close()
	if len(got) != len(all) || got[0].PN != 0 || got[2].Flags&FlagKeyStart == 0 {
		t.Fatalf("read from 0: %d packets starting at pn %d, want all %d from pn 0 (two audio packets, then the key frame)", len(got), got[0].PN, len(all))
	}
	r, err = s.NewReader("lead", 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := r.Next(context.Background())
	if err != nil || p.Flags&FlagKeyStart == 0 || p.TT != 2*time.Second {
		t.Fatalf("read from 2.5 s: tt %v flags %d err %v, want the key frame at 2 s", p.TT, p.Flags, err)
	}
}

// TestSeekStartsAtAccessUnit: an encoder may send an SEI before the
// parameter sets of a key frame (x264 does, on the first frame), with an
// audio packet in between; the key-start flag is on the parameter sets, and
// a read from the key frame begins with the SEI.
func TestSeekStartsAtAccessUnit(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 16 << 10})
	pk := synth(defaultSpec, 3*time.Second)
	k := -1
	for i := range pk {
		if pk[i].Flags&FlagKeyStart != 0 && pk[i].TT == 2*time.Second {
			k = i
		}
	}
	withTS := func(b []byte, ts uint32, marker bool) []byte {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint32(b[4:8], ts)
		b[1] &^= 0x80
		if marker {
			b[1] |= 0x80
		}
		return b
	}
	prev := pk[k-1]
	prev.RTP = withTS(prev.RTP, 1, true) // the previous frame ends
	sei := Packet{Track: 0, TT: 2 * time.Second, FT: FrameKey, RTP: withTS(rtpFor(5000, 100), 2, false)}
	audio := Packet{Track: 1, TT: 2 * time.Second, RTP: withTS(rtpFor(5001, 100), 7, true)}
	key := pk[k]
	key.RTP = withTS(key.RTP, 2, false)
	all := append(append(append([]Packet(nil), pk[:k-1]...), prev, sei, audio, key), pk[k+1:]...)
	for i := range all {
		all[i].PN = uint64(i)
	}
	record(t, s, "sei", all, StateComplete)
	r, err := s.NewReader("sei", 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := readAll(t, r)
	if len(got) < 3 || got[0].PN != uint64(k) || got[1].Track != 1 || got[2].Flags&FlagKeyStart == 0 {
		t.Fatalf("read from 2.5 s starts at pn %d (track %d), want the SEI at pn %d, then the audio packet, then the key start", got[0].PN, got[0].Track, k)
	}
}

func TestSeekAudioOnly(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 4 << 10})
	spec := streamSpec{fps: 50, videoOff: true} // a packet every 20 ms at 10 ms + 20 ms*n
	pk := synth(spec, 5*time.Second)
	w, err := s.Create(Manifest{Key: "a", Tracks: []Track{{Media: "audio", Codec: "OPUS", ClockRate: 48000}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pk {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, want time.Duration }{
		{0, 10 * time.Millisecond}, {1003 * time.Millisecond, 1010 * time.Millisecond},
		{1019 * time.Millisecond, 1010 * time.Millisecond}, {1021 * time.Millisecond, 1030 * time.Millisecond},
		{2 * time.Second, 1990 * time.Millisecond}, {time.Hour, 4990 * time.Millisecond},
	} {
		r, err := s.NewReader("a", tc.from)
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.Next(context.Background())
		_ = r.Close()
		if err != nil || p.TT != tc.want {
			t.Errorf("from %v: got %v (%v), want %v", tc.from, p.TT, err, tc.want)
		}
	}
}

// TestManyReaders reads one recording from many positions at once while it
// is still being written, and checks every reader sees the log in order.
func TestManyReaders(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 32 << 10})
	pk := synth(defaultSpec, 10*time.Second)
	w, err := s.Create(Manifest{Key: "m", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	half := len(pk) / 2
	for _, p := range pk[:half] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		from := time.Duration(i%5) * time.Second
		r, err := s.NewReader("m", from)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			var last uint64
			n := 0
			for {
				p, err := r.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					errs <- err
					return
				}
				if n > 0 && p.PN != last+1 {
					errs <- fmt.Errorf("reader from %v: pn %d after %d", from, p.PN, last)
					return
				}
				last = p.PN
				n++
			}
			if last != pk[len(pk)-1].PN {
				errs <- fmt.Errorf("reader from %v ended at pn %d", from, last)
			}
		}()
	}
	for _, p := range pk[half:] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSharedSegmentCache: players in the same segment share one decoded
// copy of it. Eight readers in step (paced: read fast, but not in bulk, as
// players would): the first shareReaders to enter a segment read it by
// chunks (one whole read to check and index it, then each its first
// chunk), the next loads it decoded into the cache, and every other reads
// that, the first ones too from their next chunk. In the first segment,
// where every reader was opened before any read, the first shareReaders
// each read it whole to seek (the index is not shared yet) and no chunk.
// (On disk: a store in memory shares every segment decoded,
// TestSharedSegmentInMemory.)
func TestSharedSegmentCache(t *testing.T) {
	s, err := Open(t.TempDir(), Options{SegmentBytes: 32 << 10, paced: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	testSharedSegments(t, s, func(segments int64) int64 { return (shareReaders+2)*segments - 1 })
}

// TestSharedSegmentInMemory: in a store in memory, where Badger copies a
// value whole at every read, readers never read by chunks: eight readers
// in step load each segment once, decoded, and share it.
func TestSharedSegmentInMemory(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 32 << 10, paced: true})
	testSharedSegments(t, s, func(segments int64) int64 { return segments })
}

// testSharedSegments plays a recording to eight readers in step and checks
// that each segment was loaded decoded once, and the reads from Badger
// (and value-log files) against reads(segments).
func testSharedSegments(t *testing.T, s *Store, reads func(segments int64) int64) {
	t.Helper()
	pk := synth(defaultSpec, 10*time.Second)
	record(t, s, "c", pk, StateComplete)
	s.cache.drop(s.recs["c"].seq, ^uint32(0)) // forget what the writer put there
	m, _ := s.Manifest("c")
	loads, shared := s.loads.Load(), s.shared.Load()
	var readers []*Reader
	if shareReaders >= 8 {
		t.Fatalf("shareReaders %d: eight readers share nothing", shareReaders)
	}
	for i := 0; i < 8; i++ {
		r, err := s.NewReader("c", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readers = append(readers, r)
	}
	for n := range pk {
		for i, r := range readers {
			p, err := r.Next(t.Context())
			if err != nil || p.PN != pk[n].PN {
				t.Fatalf("reader %d, packet %d: pn %d, %v; want pn %d", i, n, p.PN, err, pk[n].PN)
			}
		}
	}
	if got := s.shared.Load() - shared; got != int64(len(m.Segments)) {
		t.Errorf("%d segments loaded decoded for 8 readers of %d segments", got, len(m.Segments))
	}
	if want := reads(int64(len(m.Segments))); s.loads.Load()-loads != want {
		t.Errorf("%d reads from Badger for 8 readers of %d segments, want %d", s.loads.Load()-loads, len(m.Segments), want)
	}
}

func TestWaitSegment(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 8 << 10})
	w, err := s.Create(Manifest{Key: "w", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Manifest, 1)
	go func() {
		m, err := s.WaitSegment(context.Background(), "w", 2)
		if err != nil {
			t.Error(err)
		}
		done <- m
	}()
	for _, p := range synth(defaultSpec, 2*time.Second) {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	m := <-done
	if len(m.Segments) < 3 || m.State != StateFilling {
		t.Fatalf("woke with %d segments, state %s", len(m.Segments), m.State)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.WaitSegment(ctx, "w", 1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("beyond the end while filling: %v", err)
	}
	if err := w.Finish(StatePartial); err != nil {
		t.Fatal(err)
	}
	m, err = s.WaitSegment(context.Background(), "w", 1000)
	if err != nil || m.State != StatePartial {
		t.Fatalf("after Finish: state %s err %v", m.State, err)
	}
}
