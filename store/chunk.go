package store

import (
	"errors"
	"fmt"
	"hash/crc32"

	badger "github.com/dgraph-io/badger/v4"
)

// Reading by chunks (issue 15). A Reader entering a sealed segment that
// nobody holds decoded (not the writer's pending segment, not in the segment
// cache) and that no other reader is in does not copy the segment: it copies
// one chunk of its records at a time, at most chunkBytes, out of Badger's
// mapping of the value log, and decodes that. Players at different places of
// a long recording then hold a chunk each instead of a whole segment (256
// KiB); the next reader to enter a segment that shareReaders readers read
// by chunks loads it decoded into the segment cache, where all share it (a
// reader by chunks moves to the decoded segment at its next chunk).
//
// Checking (damage.go): the first read of a segment checks it whole in
// place, against its CRC-32C or SHA-256 and then by decoding it, and keeps
// each chunk's byte range, packets and CRC-32C in a chunk index (the segment
// cache keeps indexes, indexCacheBytes at most; the reader keeps its own).
// A chunk's copy is checked against its CRC-32C before any of its bytes is
// returned, so no byte reaches a player unchecked, and a segment changed on
// disk since it was checked is found damaged like one that fails its check.
//
// Every stored read and every segment write hands the value log's pages it
// touched back to the kernel (valueLogMaps.release): they stay in the page
// cache, out of the process's resident memory.

// chunkBytes bounds a chunk: whole records, so one larger record (a packet
// is at most MaxPacketBytes) is a chunk of its own.
const chunkBytes = 16 << 10

// shareReaders: a segment this many readers read by chunks is loaded
// decoded for the next (about 265 KiB for a 256 KiB segment, where a reader
// by chunks holds one or two chunks; sharing also saves each reader its
// reads).
const shareReaders = 3

// chunk is a run of whole records of an encoded segment.
type chunk struct {
	off, end     uint32 // byte range in the segment
	first, count uint32 // its packets: indexes in the segment
	crc          uint32 // CRC-32C of its bytes
}

// chunkIndex is a checked segment's chunks.
type chunkIndex struct {
	size   int // the segment's encoded length
	chunks []chunk
}

func (ci *chunkIndex) cost() int64 { return 128 + 20*int64(len(ci.chunks)) }

// chunkOf is the chunk holding packet i.
func (ci *chunkIndex) chunkOf(i int) int {
	for k := range ci.chunks {
		if c := &ci.chunks[k]; i < int(c.first+c.count) {
			return k
		}
	}
	return len(ci.chunks) - 1
}

// indexSegment decodes data (as decodeSegment) and cuts its records into
// chunks.
func indexSegment(data []byte) (uint32, []Packet, *chunkIndex, error) {
	var offs []uint32
	index, packets, err := decodeSegmentAt(data, &offs)
	if err != nil {
		return 0, nil, nil, err
	}
	ci := &chunkIndex{size: len(data)}
	for i := 0; i < len(packets); {
		j := i + 1
		for j < len(packets) && offs[j+1]-offs[i] <= chunkBytes {
			j++
		}
		ci.chunks = append(ci.chunks, chunk{off: offs[i], end: offs[j], first: uint32(i), count: uint32(j - i),
			crc: crc32.Checksum(data[offs[i]:offs[j]], castagnoli)})
		i = j
	}
	return index, packets, ci, nil
}

// storedSegment runs fn on the stored bytes of sealed segment idx of rec in
// place (Badger's mapping of the value log: v is valid only during fn),
// then releases the pages of v[off:end], the part fn says it read. An
// ErrCorrupt from fn marks the segment damaged.
func (s *Store) storedSegment(rec *recording, idx uint32, fn func(v []byte) (off, end int, err error)) error {
	err := s.withDB(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(segKey(pfxSeg, rec.seq, idx))
			if err != nil {
				return err
			}
			if item.ValueSize() > MaxSegmentBytes {
				return corruptf("%d bytes", item.ValueSize())
			}
			return item.Value(func(v []byte) error {
				off, end, err := fn(v)
				s.resident.release(v, off, end)
				return err
			})
		})
	})
	s.loads.Add(1)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return s.missingSegment(rec, idx)
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			s.damaged(rec, idx, err)
		}
		return fmt.Errorf("segment %d of %s: %w", idx, rec.key, err)
	}
	return nil
}

// missingSegment is the error for segment idx of rec not in Badger.
func (s *Store) missingSegment(rec *recording, idx uint32) error {
	rec.mu.Lock()
	// A live window drops segments as new ones seal; the header may not
	// show the drop yet while its commit completes.
	behind := idx < rec.hdr.FirstIndex || rec.hdr.M.Live
	gone := rec.deleted
	rec.mu.Unlock()
	switch {
	case behind:
		return fmt.Errorf("segment %d of %s: %w", idx, rec.key, ErrBehindWindow)
	case gone:
		return fmt.Errorf("segment %d of %s: %w", idx, rec.key, ErrNotFound)
	}
	return fmt.Errorf("segment %d of %s: %w: missing", idx, rec.key, ErrCorrupt)
}

// checkStored checks v, read from disk as segment idx of rec: its checksum,
// then its decoding (the packets alias v) and index; it also indexes its
// chunks.
func (s *Store) checkStored(rec *recording, idx uint32, v []byte) ([]Packet, *chunkIndex, error) {
	if err := s.verifySegment(rec, idx, v); err != nil {
		return nil, nil, err
	}
	got, packets, ci, err := indexSegment(v)
	if err == nil && got != idx {
		err = corruptf("holds index %d", got)
	}
	return packets, ci, err
}

// heldSegment is segment idx of rec decoded when the writer (its commit in
// flight) or the segment cache holds it, else nil.
func (s *Store) heldSegment(rec *recording, idx uint32) *segment {
	rec.mu.Lock()
	if rec.pending != nil && rec.pendingInfo.Index == idx {
		sg := rec.pending
		rec.mu.Unlock()
		return sg
	}
	rec.mu.Unlock()
	return s.cache.peek(segRef{rec.seq, idx})
}

// segmentIndex is the chunk index of sealed segment idx of rec, from the
// cache or by checking the stored segment whole.
func (s *Store) segmentIndex(rec *recording, idx uint32) (*chunkIndex, error) {
	ref := segRef{rec.seq, idx}
	if ci, ok := s.cache.index(ref); ok {
		return ci, nil
	}
	var ci *chunkIndex
	err := s.storedSegment(rec, idx, func(v []byte) (int, int, error) {
		_, c, err := s.checkStored(rec, idx, v)
		ci = c
		return 0, len(v), err
	})
	if err != nil {
		return nil, err
	}
	s.cache.addIndex(ref, ci)
	return ci, nil
}

// enterSegment is how a reader reads sealed segment idx of rec: decoded
// when it is held, or when shareReaders readers read it by chunks (loaded
// into the segment cache to share), else by chunks (ci).
func (s *Store) enterSegment(rec *recording, idx uint32) (*segment, *chunkIndex, error) {
	if sg := s.heldSegment(rec, idx); sg != nil {
		return sg, nil, nil
	}
	ref := segRef{rec.seq, idx}
	if s.cache.shares() && s.cache.chunkedReaders(ref) >= shareReaders {
		sg, err := s.segment(rec, idx)
		return sg, nil, err
	}
	ci, err := s.segmentIndex(rec, idx)
	return nil, ci, err
}

// readChunk appends the packets of chunk k of segment idx of rec (indexed
// as ci) to pk. Their RTP bytes are a fresh copy, checked against the
// chunk's CRC-32C.
func (s *Store) readChunk(rec *recording, idx uint32, ci *chunkIndex, k int, pk []Packet) ([]Packet, error) {
	c := ci.chunks[k]
	buf := make([]byte, c.end-c.off)
	err := s.storedSegment(rec, idx, func(v []byte) (int, int, error) {
		if len(v) != ci.size {
			return 0, 0, corruptf("%d bytes, %d when checked", len(v), ci.size)
		}
		copy(buf, v[c.off:c.end])
		return int(c.off), int(c.end), nil
	})
	if err != nil {
		return pk, err
	}
	if crc32.Checksum(buf, castagnoli) != c.crc {
		err := corruptf("chunk %d (bytes %d to %d) does not match its CRC-32C", k, c.off, c.end)
		s.damaged(rec, idx, err)
		return pk, fmt.Errorf("segment %d of %s: %w", idx, rec.key, err)
	}
	for range c.count {
		p, rest, err := decodeRecord(buf)
		if err != nil { // cannot be: the bytes are those decoded when checked
			return pk, fmt.Errorf("segment %d of %s: chunk %d: %w", idx, rec.key, k, err)
		}
		pk, buf = append(pk, p), rest
	}
	return pk, nil
}

// seekIn runs pick on the packets of sealed segment idx of rec and returns
// the position of the packet it picked (pos -1: none), with how to read
// on: the decoded segment when one is held, else by chunks. pick must not
// keep pk: a segment not held is decoded in place, from the value log.
func (s *Store) seekIn(rec *recording, idx uint32, pick func(pk []Packet) int) (position, error) {
	sg := s.heldSegment(rec, idx)
	ref := segRef{rec.seq, idx}
	if sg == nil && s.cache.shares() && s.cache.chunkedReaders(ref) >= shareReaders {
		var err error
		if sg, err = s.segment(rec, idx); err != nil {
			return position{}, err
		}
	}
	if sg != nil {
		return position{idx: idx, pos: pick(sg.packets), seg: sg}, nil
	}
	var ci *chunkIndex
	pos := -1
	err := s.storedSegment(rec, idx, func(v []byte) (int, int, error) {
		pk, c, err := s.checkStored(rec, idx, v)
		if err != nil {
			return 0, len(v), err
		}
		ci, pos = c, pick(pk)
		return 0, len(v), nil
	})
	if err != nil {
		return position{}, err
	}
	s.cache.addIndex(ref, ci)
	return position{idx: idx, pos: pos, cidx: ci}, nil
}

// releaseStored takes the pages of stored segment idx of rec out of the
// process's resident memory: Badger wrote it through its mapping of the
// value log.
func (s *Store) releaseStored(rec *recording, idx uint32) {
	if s.resident == nil {
		return
	}
	_ = s.withDB(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(segKey(pfxSeg, rec.seq, idx))
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error {
				s.resident.release(v, 0, len(v))
				return nil
			})
		})
	})
}
