package store

import (
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
	m.Via = append([]string(nil), m.Via...)
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
				idx, ok := segKeyIndex(item.Key())
				if !ok {
					return fmt.Errorf("%s: %w: segment info key %x", rec.key, ErrCorrupt, item.Key())
				}
				if idx < first || idx >= next {
					continue // left a live window, its block not yet dropped
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

// writeHeader persists h as rec's header.
func (s *Store) writeHeader(rec *recording, h *header) error {
	b, err := encodeHeader(h)
	if err != nil {
		return fmt.Errorf("manifest of %s: %w", rec.key, err)
	}
	return s.update(func(txn *badger.Txn) error { return txn.Set(headerKey(rec.key), b) })
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

// touch records an access now.
func (rec *recording) touchLocked(hit bool) {
	rec.hdr.LastAccess = time.Now()
	if hit {
		rec.hdr.Hits++
	}
	rec.dirty = true
}
