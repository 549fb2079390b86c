package store

import "time"

// SourceOrigin is Manifest.Source of a recording filled from its origin;
// any other non-empty Source is the id of the peer it was filled from.
const SourceOrigin = "origin"

// BetweenSources reports whether m is a live recording whose fill lost its
// source and has not chosen the next: nobody should relay from it now (a
// neighbour doing so could close a loop, it may be this node's next source).
func (m Manifest) BetweenSources() bool { return m.Live && m.Source == "" }

// NextSegment is the index the next sealed segment of m will have: where a
// fill that resumes m asks its next source to start.
func (m Manifest) NextSegment() uint32 {
	if n := len(m.Segments); n > 0 {
		return m.Segments[n-1].Index + 1
	}
	return 0
}

// Fresh is m as the start of a new recording of key: same description and
// provenance (Source, Via), no packets yet, not ended, filling.
func (m Manifest) Fresh(key string) Manifest {
	m.Key = key
	m.Ended = false
	m.State = StateFilling
	m.Segments = nil
	m.Packets = 0
	m.Bytes = 0
	m.Received = 0
	m.Created = time.Now()
	return m
}

// SetSource records where the recording's packets come from from now on:
// SourceOrigin or a peer id, and for a live relay the peers between the
// origin and this node (origin-facing first, source last).
func (w *Writer) SetSource(source string, via []string) error {
	return w.Update(func(m *Manifest) { m.Source, m.Via = source, via })
}

// SetBetweenSources marks a live recording whose source was lost as
// between sources (see Manifest.BetweenSources) until SetSource names the
// next one.
func (w *Writer) SetBetweenSources() error { return w.SetSource("", nil) }

// SetEnded marks a live recording as ended by its origin (RTCP BYE), not
// by a failure: relays of it end with it.
func (w *Writer) SetEnded() error {
	return w.Update(func(m *Manifest) { m.Ended = true })
}
