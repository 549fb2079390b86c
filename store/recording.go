package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// recording is the in-memory state of one stored recording.
type recording struct {
	key, id string
	seq     uint64

	// wmu serializes persisting this recording (seal, header updates,
	// statistics, deletion) and is held across the Badger commit so that
	// header writes land in the order they were made. It is taken before mu.
	wmu sync.Mutex

	mu          sync.Mutex
	hdr         header
	segs        []SegmentInfo // sealed segments FirstIndex..NextIndex-1, once loaded
	segsLoaded  bool
	open        *openSegment // the writer's unsealed segment (nil without a writer)
	pending     *segment     // sealed, its commit in flight (readers read it from here)
	pendingInfo SegmentInfo
	commitErr   error // a failed commit: the writer refuses more
	writer      *Writer
	readers     int
	lastTT      time.Duration // last appended packet, open segment included
	lastPN      uint64
	hasLast     bool
	baseIndex   uint32 // index of the first segment this process stored into an empty recording
	deleted     bool
	dirty       bool          // access statistics changed since last persisted
	wait        chan struct{} // closed on the next change; created by a waiter
}

// notifyLocked wakes everyone waiting for a change. rec.mu must be held.
func (r *recording) notifyLocked() {
	if r.wait != nil {
		close(r.wait)
		r.wait = nil
	}
}

// waitChanLocked returns the channel closed at the next change.
func (r *recording) waitChanLocked() chan struct{} {
	if r.wait == nil {
		r.wait = make(chan struct{})
	}
	return r.wait
}

func (r *recording) manifestLocked() Manifest {
	m := r.hdr.M
	m.Segments = append([]SegmentInfo(nil), r.segs...)
	m.SDP = append([]byte(nil), m.SDP...)
	m.Tracks = append([]Track(nil), m.Tracks...)
	return m
}

// lookup returns the recording of key with its segment list loaded.
func (s *Store) lookup(key string) (*recording, error) {
	s.mu.Lock()
	rec, ok := s.recs[key]
	s.mu.Unlock()
	if !ok {
		if err := s.brokenErr(key); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err := s.loadSegs(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// loadSegs reads the segment infos of rec once.
func (s *Store) loadSegs(rec *recording) error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.segsLoaded {
		return nil
	}
	first, next := rec.hdr.FirstIndex, rec.hdr.NextIndex
	segs := make([]SegmentInfo, 0, next-first)
	err := s.withDB(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: seqPrefix(pfxInfo, rec.seq)})
			defer it.Close()
			want := first
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				idx := binary.BigEndian.Uint32(item.Key()[10:])
				if idx < first || idx >= next {
					continue // left by a crash between window drop and header write cannot happen; be lenient
				}
				if idx != want {
					return fmt.Errorf("segment %d of %s: %w: missing (next present is %d)", want, rec.key, ErrCorrupt, idx)
				}
				var si SegmentInfo
				err := item.Value(func(v []byte) error {
					var err error
					si, err = decodeSegInfo(v)
					return err
				})
				if err != nil {
					return fmt.Errorf("segment %d of %s: %w", idx, rec.key, err)
				}
				if si.Index != idx {
					return fmt.Errorf("segment %d of %s: %w: info says index %d", idx, rec.key, ErrCorrupt, si.Index)
				}
				segs = append(segs, si)
				want++
			}
			if want != next {
				return fmt.Errorf("segment %d of %s: %w: missing", want, rec.key, ErrCorrupt)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	rec.segs, rec.segsLoaded = segs, true
	return nil
}

// brokenErr says why key's manifest could not be read at Open, if it could not.
func (s *Store) brokenErr(key string) error {
	id := StreamID(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.broken[id]; err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// recover loads headers, turns interrupted fills into `partial` and finishes
// interrupted deletions.
func (s *Store) recover() error {
	var fix []*recording
	var tombs [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte(pfxHeader)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id := string(item.Key()[len(pfxHeader):])
			var h header
			err := item.Value(func(v []byte) error {
				var err error
				h, err = decodeHeader("", v)
				return err
			})
			if err == nil && StreamID(h.M.Key) != id {
				err = fmt.Errorf("manifest %s: %w: holds key of another stream", id, ErrCorrupt)
			}
			if err != nil {
				err = fmt.Errorf("stream %s: %w", id, err)
				s.log.Error("unreadable manifest; recording unavailable", "stream", id, "err", err)
				s.broken[id] = err
				continue
			}
			rec := &recording{key: h.M.Key, id: id, seq: h.Seq, hdr: h, lastTT: h.LastTT, lastPN: h.LastPN, hasLast: h.HasLast}
			s.recs[h.M.Key] = rec
			s.used += h.StoredBytes
			s.nextSeq = max(s.nextSeq, h.Seq+1)
			if h.M.State == StateFilling || h.M.State == StateLive {
				fix = append(fix, rec)
			}
		}
		it2 := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxTomb, '/'}})
		defer it2.Close()
		for it2.Rewind(); it2.Valid(); it2.Next() {
			k := it2.Item().KeyCopy(nil)
			if len(k) == 10 {
				s.nextSeq = max(s.nextSeq, binary.BigEndian.Uint64(k[2:])+1)
			}
			tombs = append(tombs, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, rec := range fix {
		rec.hdr.M.State = StatePartial
		if err := s.writeHeader(rec, &rec.hdr); err != nil {
			return err
		}
		s.log.Info("interrupted fill is now partial", "stream", rec.id, "segments", rec.hdr.NextIndex-rec.hdr.FirstIndex)
	}
	for _, k := range tombs {
		if err := s.purgeKeys(binary.BigEndian.Uint64(k[2:])); err != nil {
			return err
		}
	}
	return nil
}

// writeHeader persists h as rec's header.
func (s *Store) writeHeader(rec *recording, h *header) error {
	b, err := encodeHeader(h)
	if err != nil {
		return fmt.Errorf("manifest of %s: %w", rec.key, err)
	}
	return s.withDB(func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			return txn.Set(headerKey(rec.key), b)
		})
	})
}

// persistHeader writes rec's current header (taken under rec.mu).
func (s *Store) persistHeader(rec *recording) error {
	rec.wmu.Lock()
	defer rec.wmu.Unlock()
	rec.mu.Lock()
	if rec.deleted {
		rec.mu.Unlock()
		return fmt.Errorf("%s: %w", rec.key, ErrNotFound)
	}
	h := rec.hdr
	rec.dirty = false
	rec.mu.Unlock()
	return s.writeHeader(rec, &h)
}

// flushStats persists access statistics if they changed.
func (s *Store) flushStats(rec *recording) error {
	rec.mu.Lock()
	dirty := rec.dirty && !rec.deleted
	rec.mu.Unlock()
	if !dirty {
		return nil
	}
	return s.persistHeader(rec)
}

// purge deletes rec from Badger: first its header (with a tombstone, in one
// transaction, so a crash cannot resurrect it), then its segments.
func (s *Store) purge(rec *recording) error {
	rec.wmu.Lock()
	err := s.withDB(func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			if err := txn.Delete(headerKey(rec.key)); err != nil {
				return err
			}
			return txn.Set(seqPrefix(pfxTomb, rec.seq), []byte(rec.key))
		})
	})
	rec.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("delete %s: %w", rec.key, err)
	}
	s.cache.drop(rec.seq, ^uint32(0))
	if err := s.purgeKeys(rec.seq); err != nil {
		return fmt.Errorf("delete %s: %w", rec.key, err)
	}
	return nil
}

// purgeKeys deletes the i/ and s/ keys of seq, then its tombstone.
func (s *Store) purgeKeys(seq uint64) error {
	return s.withDB(func(db *badger.DB) error {
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		for _, pfx := range []byte{pfxInfo, pfxSeg} {
			err := db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: seqPrefix(pfx, seq)})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if err := wb.Delete(seqPrefix(pfxTomb, seq)); err != nil {
			return err
		}
		return wb.Flush()
	})
}

// Manifest returns a copy of the manifest of key, segment list included.
func (s *Store) Manifest(key string) (Manifest, error) {
	rec, err := s.lookup(key)
	if err != nil {
		return Manifest{}, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.manifestLocked(), nil
}

// Segment returns the raw bytes of sealed segment index of key and its hash.
func (s *Store) Segment(key string, index uint32) ([]byte, Hash, error) {
	rec, err := s.lookup(key)
	if err != nil {
		return nil, Hash{}, err
	}
	rec.mu.Lock()
	first, next := rec.hdr.FirstIndex, rec.hdr.NextIndex
	var h Hash
	if index >= first && index < next {
		h = rec.segs[index-first].Hash
	}
	rec.mu.Unlock()
	if index < first || index >= next {
		return nil, Hash{}, fmt.Errorf("segment %d of %s (have %d..%d): %w", index, key, first, next, ErrNotFound)
	}
	sg, err := s.segment(rec, index)
	if err != nil {
		return nil, Hash{}, err
	}
	return bytes.Clone(sg.raw), h, nil
}

// segment returns sealed segment idx of rec from the cache or Badger.
func (s *Store) segment(rec *recording, idx uint32) (*segment, error) {
	rec.mu.Lock()
	if rec.pending != nil && rec.pendingInfo.Index == idx {
		sg := rec.pending
		rec.mu.Unlock()
		return sg, nil
	}
	rec.mu.Unlock()
	return s.cache.get(segRef{rec.seq, idx}, func() (*segment, error) {
		var raw []byte
		err := s.withDB(func(db *badger.DB) error {
			return db.View(func(txn *badger.Txn) error {
				item, err := txn.Get(segKey(pfxSeg, rec.seq, idx))
				if err != nil {
					return err
				}
				if item.ValueSize() > MaxSegmentBytes {
					return corruptf("%d bytes", item.ValueSize())
				}
				raw, err = item.ValueCopy(nil)
				return err
			})
		})
		s.loads.Add(1)
		if errors.Is(err, badger.ErrKeyNotFound) {
			rec.mu.Lock()
			behind := idx < rec.hdr.FirstIndex
			gone := rec.deleted
			rec.mu.Unlock()
			switch {
			case behind:
				return nil, fmt.Errorf("segment %d of %s: %w", idx, rec.key, ErrBehindWindow)
			case gone:
				return nil, fmt.Errorf("segment %d of %s: %w", idx, rec.key, ErrNotFound)
			}
			return nil, fmt.Errorf("segment %d of %s: %w: missing", idx, rec.key, ErrCorrupt)
		}
		if err != nil {
			return nil, fmt.Errorf("segment %d of %s: %w", idx, rec.key, err)
		}
		got, packets, err := decodeSegment(raw)
		if err == nil && got != idx {
			err = corruptf("holds index %d", got)
		}
		if err != nil {
			return nil, fmt.Errorf("segment %d of %s: %w", idx, rec.key, err)
		}
		return &segment{raw: raw, packets: packets}, nil
	})
}

// WaitSegment returns when segment index of key is sealed or the recording is
// no longer being written (the returned manifest tells which), or ctx ends.
func (s *Store) WaitSegment(ctx context.Context, key string, index uint32) (Manifest, error) {
	rec, err := s.lookup(key)
	if err != nil {
		return Manifest{}, err
	}
	for {
		rec.mu.Lock()
		if rec.deleted {
			rec.mu.Unlock()
			return Manifest{}, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		if index < rec.hdr.NextIndex || rec.writer == nil {
			m := rec.manifestLocked()
			rec.mu.Unlock()
			return m, nil
		}
		ch := rec.waitChanLocked()
		rec.mu.Unlock()
		select {
		case <-ctx.Done():
			return Manifest{}, ctx.Err()
		case <-s.done:
			return Manifest{}, ErrClosed
		case <-ch:
		}
	}
}

// touch records an access now.
func (rec *recording) touchLocked(hit bool) {
	rec.hdr.LastAccess = time.Now()
	if hit {
		rec.hdr.Hits++
	}
	rec.dirty = true
}
