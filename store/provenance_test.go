package store

import (
	"slices"
	"testing"
	"time"
)

// TestProvenance: a live writer names its source and relay chain, is
// between sources once its source is lost, and a fresh copy of its manifest
// keeps the description and provenance but nothing stored.
func TestProvenance(t *testing.T) {
	s := memStore(t, Options{})
	w, err := s.Create(Manifest{Key: "k", Tracks: avTracks(), Live: true, Source: "peerA", Via: []string{"peerB", "peerA"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Finish(StatePartial) }()
	if m := w.Manifest(); m.BetweenSources() || m.NextSegment() != 0 {
		t.Fatalf("new recording: between sources %v, next segment %d", m.BetweenSources(), m.NextSegment())
	}
	if err := w.SetBetweenSources(); err != nil {
		t.Fatal(err)
	}
	if m := w.Manifest(); !m.BetweenSources() || m.Via != nil {
		t.Fatalf("after SetBetweenSources: source %q via %v", m.Source, m.Via)
	}
	if err := w.SetSource(SourceOrigin, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.SetEnded(); err != nil {
		t.Fatal(err)
	}
	m := w.Manifest()
	if m.BetweenSources() || m.Source != SourceOrigin || !m.Ended {
		t.Fatalf("after SetSource and SetEnded: source %q ended %v", m.Source, m.Ended)
	}

	m.Segments = []SegmentInfo{{Index: 4}, {Index: 5}}
	m.Packets, m.Bytes, m.Received, m.State = 9, 9, 9, StatePartial
	if m.NextSegment() != 6 {
		t.Errorf("next segment %d, want 6", m.NextSegment())
	}
	f := m.Fresh("k2")
	if f.Key != "k2" || f.State != StateFilling || f.Ended || f.Segments != nil || f.Packets+f.Bytes+f.Received != 0 ||
		f.Source != SourceOrigin || !slices.Equal(f.Tracks, m.Tracks) || time.Since(f.Created) > time.Minute {
		t.Errorf("fresh copy: %+v", f)
	}
	if (Manifest{Source: ""}).BetweenSources() {
		t.Error("a VOD recording without a source is not between sources")
	}
}
