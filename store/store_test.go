package store

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 64 << 10})
	want := synth(defaultSpec, 10*time.Second)
	record(t, s, "rtsp://a:554/x", want, StateComplete)
	m, err := s.Manifest("rtsp://a:554/x")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateComplete || m.Packets != uint64(len(want)) || len(m.Segments) < 10 {
		t.Fatalf("manifest: state %s packets %d segments %d", m.State, m.Packets, len(m.Segments))
	}
	var bytes uint64
	for _, p := range want {
		bytes += uint64(len(p.RTP))
	}
	if m.Bytes != bytes {
		t.Fatalf("bytes %d, want %d", m.Bytes, bytes)
	}
	if m.Duration != want[len(want)-1].TT {
		t.Fatalf("duration %v, want %v", m.Duration, want[len(want)-1].TT)
	}
	r, err := s.NewReader("rtsp://a:554/x", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkPackets(t, readAll(t, r), want)
	if _, err := r.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("after end: %v", err)
	}
}
