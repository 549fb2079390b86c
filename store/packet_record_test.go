package store

import (
	"errors"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, p := range synth(defaultSpec, time.Second) {
		b := AppendRecord(nil, &p)
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("pn %d: %v", p.PN, err)
		}
		if !samePacket(got, p) {
			t.Fatalf("pn %d: got %+v", p.PN, got)
		}
		for _, bad := range [][]byte{b[:len(b)-1], append(b[:len(b):len(b)], 0), b[:3], nil} {
			if _, err := DecodeRecord(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("damaged record of %d bytes: %v", len(bad), err)
			}
		}
	}
}

// TestReaderAtFollowsLiveTail opens readers at a sealed segment and at the
// open one of a live recording, and checks each returns every packet from
// that segment's first, in order, including those appended later.
func TestReaderAtFollowsLiveTail(t *testing.T) {
	s := memStore(t, Options{LiveSegmentSpan: 200 * time.Millisecond, LiveWindow: time.Minute})
	w, err := s.Create(Manifest{Key: "live", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	pk := synth(defaultSpec, 3*time.Second)
	half := len(pk) / 2
	for _, p := range pk[:half] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	m := w.Manifest()
	if len(m.Segments) < 3 {
		t.Fatalf("%d sealed segments", len(m.Segments))
	}
	sealed := m.Segments[1]
	open := nextSegment(m) // or the segment in flight, the open one after it
	if _, err := s.NewReaderAt("live", open+2); err == nil {
		t.Fatal("a reader beyond the open segment was opened")
	}
	for _, tc := range []struct {
		name    string
		index   uint32
		firstPN uint64
	}{
		{"sealed", sealed.Index, sealed.FirstPN},
		{"open", open, m.Segments[len(m.Segments)-1].FirstPN + uint64(m.Segments[len(m.Segments)-1].Packets)},
	} {
		r, err := s.NewReaderAt("live", tc.index)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		defer r.Close()
		for i := range 3 {
			p, err := r.Next(t.Context())
			if err != nil || p.PN != tc.firstPN+uint64(i) {
				t.Fatalf("%s: packet %d: pn %d, %v; want pn %d", tc.name, i, p.PN, err, tc.firstPN+uint64(i))
			}
		}
	}
	// The open reader tails what is appended next.
	r, err := s.NewReaderAt("live", open)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, p := range pk[half:] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	want := pk[int(m.Segments[len(m.Segments)-1].FirstPN)+int(m.Segments[len(m.Segments)-1].Packets)-int(pk[0].PN):]
	for i, wp := range want {
		p, err := r.Next(t.Context())
		if err != nil || !samePacket(p, wp) {
			t.Fatalf("tail packet %d: pn %d %v, want pn %d", i, p.PN, err, wp.PN)
		}
	}
}

func nextSegment(m Manifest) uint32 {
	if n := len(m.Segments); n > 0 {
		return m.Segments[n-1].Index + 1
	}
	return 0
}

func FuzzDecodeRecord(f *testing.F) {
	for _, p := range synth(defaultSpec, 200*time.Millisecond)[:4] {
		f.Add(AppendRecord(nil, &p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeRecord(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		q, err := DecodeRecord(AppendRecord(nil, &p))
		if err != nil || !samePacket(p, q) {
			t.Fatalf("re-encoded record decodes to %+v, %v; want %+v", q, err, p)
		}
	})
}
