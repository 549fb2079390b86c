package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

func TestSealBySizeAndSpan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes int
		span  time.Duration
		check func(t *testing.T, si SegmentInfo)
	}{
		{"size", 64 << 10, time.Hour, func(t *testing.T, si SegmentInfo) {
			if si.Size < 64<<10 || si.Size > 64<<10+2000 {
				t.Errorf("segment %d: %d bytes, want 64 KiB plus at most a packet", si.Index, si.Size)
			}
		}},
		{"span", 512 << 10, 500 * time.Millisecond, func(t *testing.T, si SegmentInfo) {
			if si.LastTT-si.FirstTT >= 500*time.Millisecond || si.LastTT-si.FirstTT < 400*time.Millisecond {
				t.Errorf("segment %d spans %v, want just under 500ms", si.Index, si.LastTT-si.FirstTT)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := memStore(t, Options{SegmentBytes: tc.bytes, SegmentSpan: tc.span})
			record(t, s, "k", synth(defaultSpec, 10*time.Second), StateComplete)
			m, err := s.Manifest("k")
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Segments) < 5 {
				t.Fatalf("%d segments", len(m.Segments))
			}
			for _, si := range m.Segments[:len(m.Segments)-1] {
				tc.check(t, si)
			}
		})
	}
}

// smallSegments is a store holding a 4 s recording "k" in segments of
// 16 KiB, its packets and its manifest.
func smallSegments(t *testing.T) (*Store, []Packet, Manifest) {
	src := memStore(t, Options{SegmentBytes: 16 << 10})
	pk := synth(defaultSpec, 4*time.Second)
	record(t, src, "k", pk, StateComplete)
	m, err := src.Manifest("k")
	if err != nil {
		t.Fatal(err)
	}
	return src, pk, m
}

// TestAppendSegment copies a recording segment by segment, as a peer fill
// does, and checks verification happens before anything is stored.
func TestAppendSegment(t *testing.T) {
	src, pk, m := smallSegments(t)
	dst := memStore(t, Options{})
	w, err := dst.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	seg := func(i uint32) ([]byte, Hash) {
		data, h, err := src.Segment("k", i)
		if err != nil {
			t.Fatal(err)
		}
		if h != m.Segments[i].Hash || sha256.Sum256(data) != h {
			t.Fatalf("segment %d: hash does not match manifest", i)
		}
		return data, h
	}
	d0, h0 := seg(0)
	d1, h1 := seg(1)
	bad := append([]byte(nil), d0...)
	bad[len(bad)-1] ^= 1
	if err := w.AppendSegment(bad, h0); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("flipped byte: %v", err)
	}
	if err := w.AppendSegment(bad[:20], sha256.Sum256(bad[:20])); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated with matching hash: %v", err)
	}
	if err := w.AppendSegment(d1, h1); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("segment 1 first: %v", err)
	}
	if got := w.Manifest(); len(got.Segments) != 0 || got.Packets != 0 {
		t.Fatalf("rejected segments were stored: %+v", got.Segments)
	}
	if err := w.AppendChecked(CheckedSegment{}, Seal{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a segment Check did not make: %v", err)
	}
	// Check copies: the caller's buffer may change once it returns.
	scratch := bytes.Clone(d0)
	c0, err := w.Check(scratch, h0)
	if err != nil {
		t.Fatal(err)
	}
	clear(scratch)
	if err := w.AppendChecked(c0, Seal{}); err != nil {
		t.Fatalf("checked segment 0 after its buffer was reused: %v", err)
	}
	if got := w.Manifest(); len(got.Segments) != 1 || got.Segments[0].Hash != h0 {
		t.Fatalf("after the checked segment 0: %+v", got.Segments)
	}
	for i := 1; i < len(m.Segments); i++ {
		d, h := seg(uint32(i))
		if err := w.AppendSegment(d, h); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	if err := w.AppendSegment(d0, h0); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	got, _ := dst.Manifest("k")
	if len(got.Segments) != len(m.Segments) || got.Packets != m.Packets || got.Bytes != m.Bytes {
		t.Fatalf("copy: %d segments %d packets, want %d %d", len(got.Segments), got.Packets, len(m.Segments), m.Packets)
	}
	for i := range got.Segments {
		if got.Segments[i] != m.Segments[i] {
			t.Fatalf("segment info %d: %+v, want %+v", i, got.Segments[i], m.Segments[i])
		}
	}
	r, err := dst.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkPackets(t, readAll(t, r), pk)
}

func TestUpdateLastAndAppendChecks(t *testing.T) {
	s := memStore(t, Options{})
	w, err := s.Create(Manifest{Key: "u", Tracks: avTracks(), Source: "origin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := w.Last(); ok {
		t.Fatal("Last on an empty recording")
	}
	if err := w.Append(Packet{Track: 5, RTP: []byte{1}}); err == nil {
		t.Fatal("track beyond Tracks accepted")
	}
	if err := w.Append(Packet{RTP: make([]byte, MaxPacketBytes+1)}); err == nil {
		t.Fatal("oversized packet accepted")
	}
	if err := w.Append(Packet{TT: 1500*time.Microsecond + 7, PN: 9, RTP: []byte{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if tt, pn, ok := w.Last(); !ok || tt != 1500*time.Microsecond || pn != 9 {
		t.Fatalf("Last: %v %d %v", tt, pn, ok)
	}
	if err := w.Update(func(m *Manifest) {
		m.Source, m.MetaInfo, m.Duration, m.SDP = "peer1", true, time.Minute, []byte("v=1")
		m.State, m.Packets = StateComplete, 1000 // not the caller's to change
	}); err != nil {
		t.Fatal(err)
	}
	m := w.Manifest()
	if m.Source != "peer1" || !m.MetaInfo || m.Duration != time.Minute || string(m.SDP) != "v=1" ||
		m.State != StateFilling || m.Packets != 0 {
		t.Fatalf("after Update: %+v", m)
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(StatePartial); err != nil {
		t.Fatal("Finish not idempotent:", err)
	}
	if err := w.Append(Packet{RTP: []byte{1}}); err == nil {
		t.Fatal("append after Finish accepted")
	}
	m, _ = s.Manifest("u")
	if m.State != StateComplete || m.Duration != time.Minute || m.Packets != 1 {
		t.Fatalf("stored: state %s duration %v packets %d", m.State, m.Duration, m.Packets)
	}
	if _, err := s.Create(Manifest{Key: "u"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v", err)
	}
}

func TestResume(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 16 << 10})
	pk := synth(defaultSpec, 4*time.Second)
	half := len(pk) / 2
	record(t, s, "r", pk[:half], StatePartial)
	if _, err := s.Resume("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resume unknown: %v", err)
	}
	w, err := s.Resume("r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resume("r"); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Resume: %v", err)
	}
	if tt, pn, ok := w.Last(); !ok || pn != pk[half-1].PN || tt != pk[half-1].TT {
		t.Fatalf("Last after resume: %v %d %v", tt, pn, ok)
	}
	if m := w.Manifest(); m.State != StateFilling {
		t.Fatalf("state %s", m.State)
	}
	for _, p := range pk[half:] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resume("r"); err == nil {
		t.Fatal("resumed a complete recording")
	}
	r, err := s.NewReader("r", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkPackets(t, readAll(t, r), pk)
}

func TestLiveWindow(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 512 << 10, SegmentSpan: time.Second, LiveSegmentSpan: time.Second, LiveWindow: 5 * time.Second})
	w, err := s.Create(Manifest{Key: "live", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	pk := synth(defaultSpec, 30*time.Second)
	r, err := s.NewReader("live", 0) // a reader that never reads: it falls behind
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var maxUsed int64
	for _, p := range pk {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		used, _ := s.Usage()
		maxUsed = max(maxUsed, used)
	}
	if err := w.sync(); err != nil {
		t.Fatal(err)
	}
	m := w.Manifest()
	if m.State != StateLive {
		t.Fatalf("state %s", m.State)
	}
	first, last := m.Segments[0], m.Segments[len(m.Segments)-1]
	if len(m.Segments) > 7 || last.LastTT-first.LastTT > 5*time.Second || first.Index < 20 {
		t.Fatalf("window holds %d segments from %d (%v..%v)", len(m.Segments), first.Index, first.FirstTT, last.LastTT)
	}
	if m.Duration < 5*time.Second || m.Duration > 7*time.Second {
		t.Fatalf("live duration %v", m.Duration)
	}
	if _, _, err := s.Segment("live", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropped segment still served: %v", err)
	}
	var stored int64
	var packets, rtpBytes uint64
	for _, si := range m.Segments {
		stored += int64(si.Size)
		data, _, err := s.Segment("live", si.Index)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := DecodeSegment(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pk {
			packets++
			rtpBytes += uint64(len(p.RTP))
		}
	}
	if m.Packets != packets || m.Bytes != rtpBytes {
		t.Fatalf("manifest counts %d packets, %d bytes; the window holds %d, %d", m.Packets, m.Bytes, packets, rtpBytes)
	}
	var sealed uint64 // every packet sealed since the start, dropped or not
	for _, p := range pk {
		if p.PN < last.FirstPN+uint64(last.Packets) {
			sealed += uint64(len(p.RTP))
		}
	}
	if m.Received != sealed {
		t.Fatalf("manifest received %d bytes, %d were sealed", m.Received, sealed)
	}
	if used, _ := s.Usage(); used != stored || maxUsed > 8*stored/5 {
		t.Fatalf("usage %d (max seen %d), window holds %d", used, maxUsed, stored)
	}
	if _, err := r.Next(context.Background()); !errors.Is(err, ErrBehindWindow) {
		// The reader had loaded nothing; its first segment is gone.
		t.Fatalf("reader behind the window: %v", err)
	}
	// A new reader lands inside the window.
	r2, err := s.NewReader("live", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	p, err := r2.Next(context.Background())
	if err != nil || p.TT < first.FirstTT {
		t.Fatalf("new reader: tt %v err %v", p.TT, err)
	}
}

// TestAppendSegmentFromAnotherCut: two copies of one stream cut into
// segments differently (two nodes that each filled from the origin) cannot
// be spliced by index: the segment must start at the next packet.
func TestAppendSegmentFromAnotherCut(t *testing.T) {
	pk := synth(defaultSpec, 4*time.Second)
	a := memStore(t, Options{SegmentBytes: 16 << 10})
	record(t, a, "k", pk, StateComplete)
	b := memStore(t, Options{SegmentBytes: 24 << 10})
	record(t, b, "k", pk, StateComplete)
	ma, _ := a.Manifest("k")
	mb, _ := b.Manifest("k")
	if ma.Segments[1].FirstPN == mb.Segments[1].FirstPN {
		t.Fatal("test setup: both copies cut segment 1 at the same packet")
	}

	dst := memStore(t, Options{})
	w, err := dst.Create(ma)
	if err != nil {
		t.Fatal(err)
	}
	d0, h0, _ := a.Segment("k", 0)
	if err := w.AppendSegment(d0, h0); err != nil {
		t.Fatal(err)
	}
	d1, h1, _ := b.Segment("k", 1)
	if err := w.AppendSegment(d1, h1); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("segment 1 of another cut: %v, want ErrOutOfOrder", err)
	}
	d1, h1, _ = a.Segment("k", 1)
	if err := w.AppendSegment(d1, h1); err != nil {
		t.Fatalf("segment 1 of the same cut: %v", err)
	}
}

// TestLiveSegmentsAreShort: live recordings seal every LiveSegmentSpan, not
// every SegmentSpan, so a relaying neighbour lags by that much only.
func TestLiveSegmentsAreShort(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 512 << 10, SegmentSpan: time.Second, LiveSegmentSpan: 100 * time.Millisecond})
	w, err := s.Create(Manifest{Key: "live", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	for _, p := range synth(defaultSpec, 3*time.Second) {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.sync(); err != nil {
		t.Fatal(err)
	}
	m := w.Manifest()
	if len(m.Segments) < 20 {
		t.Fatalf("3 s of live media sealed into %d segments, want about 30", len(m.Segments))
	}
	for _, si := range m.Segments {
		if span := si.LastTT - si.FirstTT; span >= 100*time.Millisecond {
			t.Fatalf("live segment %d spans %v, want under 100ms", si.Index, span)
		}
	}
}

// TestLiveSegmentBuffersFitTheirSpan: live segments are cut every
// LiveSegmentSpan, far below SegmentBytes; their buffers are sized from the
// last segment, not from SegmentBytes, so a window of them costs what it
// holds.
func TestLiveSegmentBuffersFitTheirSpan(t *testing.T) {
	s := memStore(t, Options{LiveSegmentSpan: 100 * time.Millisecond, LiveWindow: time.Minute})
	w, err := s.Create(Manifest{Key: "live", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	biggest := 0
	for _, p := range synth(defaultSpec, 3*time.Second) {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		w.mu.Lock()
		if w.sealed > 0 {
			biggest = max(biggest, cap(w.open.buf))
		}
		w.mu.Unlock()
	}
	m := w.Manifest()
	largest := 0
	for _, si := range m.Segments {
		largest = max(largest, int(si.Size))
	}
	limit := max(2*largest, segHeaderLen+maxRecordHeader+MaxPacketBytes)
	if biggest == 0 || biggest > limit {
		t.Fatalf("open live segment buffers up to %d bytes; segments are at most %d bytes", biggest, largest)
	}
	t.Logf("segments ≤ %d bytes, buffers ≤ %d bytes (SegmentBytes %d)", largest, biggest, s.opts.SegmentBytes)
}

// TestTrackTail: the writer remembers each track's last packet, from
// appended packets and from segments received whole.
func TestTrackTail(t *testing.T) {
	s := memStore(t, Options{})
	w, err := s.Create(Manifest{Key: "k", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	if _, _, ok := w.TrackTail(0); ok {
		t.Fatal("a tail before any packet")
	}
	pk := synth(defaultSpec, 2*time.Second)
	before := time.Now()
	for _, p := range pk {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	for track := range uint8(2) {
		var want Packet
		for _, p := range pk {
			if p.Track == track {
				want = p
			}
		}
		got, at, ok := w.TrackTail(track)
		if !ok || !samePacket(got, want) || at.Before(before) {
			t.Fatalf("track %d: tail pn %d at %v (%v), want pn %d", track, got.PN, at, ok, want.PN)
		}
	}
	if _, _, ok := w.TrackTail(7); ok {
		t.Fatal("a tail for a track without packets")
	}
}

// TestAppendCheckedSpare: a writer with SetSpare gives back the bytes of
// a segment it stored that nothing else holds, and keeps those a reader
// (or the segment cache) may hold; what readers read is the segments as
// appended, whatever the caller does with the bytes it got back.
func TestAppendCheckedSpare(t *testing.T) {
	src, pk, m := smallSegments(t)
	if len(m.Segments) < 3 {
		t.Fatalf("%d segments", len(m.Segments))
	}
	dst := memStore(t, Options{})
	w, err := dst.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	var spared [][]byte
	w.SetSpare(func(b []byte) { spared = append(spared, b) })
	appendOwned := func(w *Writer, i uint32) []byte {
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
		return data
	}

	d0 := appendOwned(w, 0)
	if len(spared) != 1 || &spared[0][0] != &d0[0] {
		t.Fatalf("segment 0, no reader: %d buffers back", len(spared))
	}
	clear(spared[0]) // the caller reuses it

	// A reader of the recording: the segment goes to the segment cache as
	// it is committed, and stays the store's.
	r, err := dst.NewReaderAt("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d1 := appendOwned(w, 1)
	want1 := bytes.Clone(d1)
	if len(spared) != 1 {
		t.Fatalf("segment 1, a reader open: %d buffers back, want still 1", len(spared))
	}
	for i := 2; i < len(m.Segments); i++ {
		appendOwned(w, uint32(i))
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	checkPackets(t, readAll(t, r), pk)
	if !bytes.Equal(d1, want1) {
		t.Fatal("a segment the store kept was changed")
	}

	// A live writer keeps its segments' last packets: nothing comes back.
	lm := m
	lm.Key, lm.Live = "live", true
	lw, err := dst.Create(lm)
	if err != nil {
		t.Fatal(err)
	}
	n := len(spared)
	lw.SetSpare(func(b []byte) { spared = append(spared, b) })
	appendOwned(lw, 0)
	if len(spared) != n {
		t.Fatal("a live writer gave a segment back")
	}
	if err := lw.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
}
