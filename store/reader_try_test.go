package store

import (
	"errors"
	"io"
	"testing"
	"time"
)

// TestTryNext: at the tail of a recording being written TryNext says
// ErrWouldBlock at once; it reads what is appended, and io.EOF once the
// recording is finished.
func TestTryNext(t *testing.T) {
	s := memStore(t, Options{})
	w, err := s.Create(Manifest{Key: "k", Tracks: avTracks(), SDP: []byte("v=0\r\n"), Source: SourceOrigin})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.TryNext(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("empty recording: %v, want ErrWouldBlock", err)
	}
	pkts := synth(defaultSpec, time.Second)
	for _, p := range pkts[:3] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		p, err := r.TryNext()
		if err != nil || p.PN != pkts[i].PN {
			t.Fatalf("packet %d: pn %d, %v; want pn %d", i, p.PN, err, pkts[i].PN)
		}
	}
	if _, err := r.TryNext(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("at the tail: %v, want ErrWouldBlock", err)
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	if _, err := r.TryNext(); !errors.Is(err, io.EOF) {
		t.Fatalf("finished: %v, want io.EOF", err)
	}
}
