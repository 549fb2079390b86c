package store

import (
	"fmt"
	"time"
)

// MaxRecordBytes bounds one encoded packet record (the record header plus
// at most MaxPacketBytes of RTP).
const MaxRecordBytes = maxRecordHeader + MaxPacketBytes

// AppendRecord appends p encoded as one segment record (see segment.go) to
// b. It is how a single packet crosses the mesh when a live recording is
// relayed packet by packet. p.TT is kept to the microsecond.
func AppendRecord(b []byte, p *Packet) []byte {
	q := *p
	q.TT = q.TT.Truncate(time.Microsecond)
	b, _ = appendRecord(b, &q)
	return b
}

// DecodeRecord decodes exactly one record, as AppendRecord wrote it. The
// packet's RTP aliases data. Damaged input gives an error wrapping
// ErrCorrupt, never a panic.
func DecodeRecord(data []byte) (Packet, error) {
	if len(data) > MaxRecordBytes {
		return Packet{}, corruptf("record of %d bytes exceeds %d", len(data), MaxRecordBytes)
	}
	p, rest, err := decodeRecord(data)
	if err != nil {
		return Packet{}, err
	}
	if len(rest) != 0 {
		return Packet{}, corruptf("%d trailing bytes after the record", len(rest))
	}
	return p, nil
}

// NewReaderAt opens a reader of key at the first packet of segment index,
// which may be sealed, in flight or the writer's open segment. It is how a
// live recording is relayed packet by packet from where its sealed segments
// end. ErrBehindWindow when index has left a live window; an error when it is
// beyond the open segment. Unlike NewReader it counts no hit.
func (s *Store) NewReaderAt(key string, index uint32) (*Reader, error) {
	rec, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	s.mu.Lock() // as NewReader: eviction counts readers under s.mu
	defer s.mu.Unlock()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	next := rec.hdr.NextIndex
	if rec.pending != nil {
		next = max(next, rec.pendingInfo.Index+1)
	}
	if rec.open != nil {
		next = max(next, rec.open.index)
	}
	switch {
	case rec.deleted:
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	case index < rec.hdr.FirstIndex:
		return nil, fmt.Errorf("segment %d of %s (window starts at %d): %w", index, key, rec.hdr.FirstIndex, ErrBehindWindow)
	case index > next:
		return nil, fmt.Errorf("segment %d of %s: beyond the open segment %d", index, key, next)
	}
	rec.readers++
	return &Reader{s: s, rec: rec, idx: index, started: true, closing: make(chan struct{})}, nil
}
