package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// Segment returns the raw bytes of sealed segment index of key and its hash.
func (s *Store) Segment(key string, index uint32) ([]byte, Hash, error) {
	data, si, err := s.SegmentSealed(key, index)
	return data, si.Hash, err
}

// SegmentSealed returns the raw bytes of sealed segment index of key and
// its info (hash and seal).
func (s *Store) SegmentSealed(key string, index uint32) ([]byte, SegmentInfo, error) {
	rec, err := s.lookup(key)
	if err != nil {
		return nil, SegmentInfo{}, err
	}
	rec.mu.Lock()
	first, next := rec.hdr.FirstIndex, rec.hdr.NextIndex
	var si SegmentInfo
	if index >= first && index < next {
		si = rec.segs[index-first]
	}
	rec.mu.Unlock()
	if index < first || index >= next {
		return nil, SegmentInfo{}, fmt.Errorf("segment %d of %s (have %d..%d): %w", index, key, first, next, ErrNotFound)
	}
	sg, err := s.segment(rec, index)
	if err != nil {
		return nil, SegmentInfo{}, err
	}
	return bytes.Clone(sg.raw), si, nil
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
			// A live window drops segments as new ones seal; the header may
			// not show the drop yet while its commit completes.
			behind := idx < rec.hdr.FirstIndex || rec.hdr.M.Live
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
		err = s.verifySegment(rec, idx, raw)
		var got uint32
		var packets []Packet
		if err == nil {
			got, packets, err = decodeSegment(raw)
		}
		if err == nil && got != idx {
			err = corruptf("holds index %d", got)
		}
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				s.damaged(rec, idx, err)
			}
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
