package store

import (
	"errors"
	"testing"
	"time"
)

// TestSpan: Span follows a live window as it fills and rolls: first is the
// oldest packet a reader can still get, last the newest appended.
func TestSpan(t *testing.T) {
	s := memStore(t, Options{LiveSegmentSpan: 200 * time.Millisecond, LiveWindow: 2 * time.Second})
	if _, _, err := s.Span("live"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	w, err := s.Create(Manifest{Key: "live", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	if _, _, err := s.Span("live"); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty recording: %v", err)
	}
	pk := synth(defaultSpec, 10*time.Second)
	for i, p := range pk {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		if i == 0 || i == 100 { // tt 0 and 0.8 s: nothing has left the window yet
			first, last, err := s.Span("live")
			if err != nil || first != 0 || last != p.TT {
				t.Fatalf("after packet %d (tt %v): span %v..%v, %v", i, p.TT, first, last, err)
			}
		}
	}
	if err := w.sync(); err != nil {
		t.Fatal(err)
	}
	first, last, err := s.Span("live")
	if err != nil {
		t.Fatal(err)
	}
	m := w.Manifest()
	if want := pk[len(pk)-1].TT; last != want {
		t.Fatalf("last %v, want %v", last, want)
	}
	if first != m.Segments[0].FirstTT || first < 7*time.Second {
		t.Fatalf("first %v; window's first segment starts at %v", first, m.Segments[0].FirstTT)
	}
	// A reader at first gets the packet there, not ErrBehindWindow.
	r, err := s.NewReader("live", first)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := r.Next(t.Context())
	if err != nil || p.TT < first {
		t.Fatalf("reader at the window start: tt %v, %v", p.TT, err)
	}
}
