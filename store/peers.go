package store

import (
	"bytes"
	"context"
	"fmt"
)

// Segment returns the raw bytes of sealed segment index of key and its hash.
func (s *Store) Segment(key string, index uint32) ([]byte, Hash, error) {
	data, si, err := s.SegmentSealed(key, index)
	return data, si.Hash, err
}

// SegmentSealed returns the raw bytes of sealed segment index of key and
// its info (hash and seal).
func (s *Store) SegmentSealed(key string, index uint32) ([]byte, SegmentInfo, error) {
	rec, si, err := s.sealedInfo(key, index)
	if err != nil {
		return nil, SegmentInfo{}, err
	}
	sg, err := s.segment(rec, index)
	if err != nil {
		return nil, SegmentInfo{}, err
	}
	return bytes.Clone(sg.raw), si, nil
}

// SegmentInto is SegmentSealed for a reader that reads each segment once
// and copies it out at once (a fill server writes it to a stream): a
// segment the writer or the segment cache holds is returned as it is there,
// shared, and the caller must not change it; any other is read into *buf
// (grown when short), checked against its stored checksum, and returned
// there, neither decoded nor cached. The caller reuses *buf once it is done
// with the bytes. A fill's segments are seldom in the cache: decoding them
// and allocating a buffer for each cost the sender a sixth of its CPU, and
// a fill put through the cache pushed out the segments players share.
func (s *Store) SegmentInto(key string, index uint32, buf *[]byte) ([]byte, SegmentInfo, error) {
	rec, si, err := s.sealedInfo(key, index)
	if err != nil {
		return nil, SegmentInfo{}, err
	}
	if sg := s.heldSegment(rec, index); sg != nil {
		return sg.raw, si, nil
	}
	var raw []byte
	if _, err := s.storedSegment(rec, index, func(size int) ([]byte, int, error) {
		if cap(*buf) < size {
			*buf = make([]byte, size)
		}
		raw = (*buf)[:size]
		return raw, 0, nil
	}); err != nil {
		return nil, SegmentInfo{}, err
	}
	if err := s.verifySegment(rec, index, raw); err != nil {
		s.damaged(rec, index, err)
		return nil, SegmentInfo{}, fmt.Errorf("segment %d of %s: %w", index, key, err)
	}
	return raw, si, nil
}

// sealedInfo is the recording of key and the info of its sealed segment
// index; ErrNotFound when it has no such segment.
func (s *Store) sealedInfo(key string, index uint32) (*recording, SegmentInfo, error) {
	rec, err := s.lookup(key)
	if err != nil {
		return nil, SegmentInfo{}, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	first, next := rec.hdr.FirstIndex, rec.hdr.NextIndex
	if index < first || index >= next {
		return nil, SegmentInfo{}, fmt.Errorf("segment %d of %s (have %d..%d): %w", index, key, first, next, ErrNotFound)
	}
	return rec, rec.segs[index-first], nil
}

// segment returns sealed segment idx of rec decoded: the writer's pending
// one, or the segment cache's, loaded once into it.
func (s *Store) segment(rec *recording, idx uint32) (*segment, error) {
	if sg := rec.lendPending(idx); sg != nil {
		return sg, nil
	}
	return s.cache.get(segRef{rec.seq, idx}, func() (*segment, error) {
		var sg *segment
		err := s.wholeSegment(rec, idx, true, func(raw []byte, pk []Packet, _ *chunkIndex) {
			sg = &segment{raw: raw, packets: pk}
		})
		if err != nil {
			return nil, err
		}
		s.shared.Add(1)
		return sg, nil
	})
}

// WaitSegment returns when segment index of key is sealed or the recording is
// no longer being written (the returned manifest tells which), or ctx ends.
func (s *Store) WaitSegment(ctx context.Context, key string, index uint32) (Manifest, error) {
	var m Manifest
	err := s.awaitSegment(ctx, key, index, func(rec *recording) { m = rec.manifestLocked() })
	return m, err
}

// WaitSealed is WaitSegment for one segment: its info (hash, seal) once it
// is sealed and stored; stored is false when the recording stopped being
// written without it (or it left a live window).
func (s *Store) WaitSealed(ctx context.Context, key string, index uint32) (si SegmentInfo, stored bool, err error) {
	err = s.awaitSegment(ctx, key, index, func(rec *recording) {
		if first := rec.hdr.FirstIndex; index >= first && index < rec.hdr.NextIndex {
			si, stored = rec.segs[index-first], true
		}
	})
	return si, stored, err
}

// awaitSegment waits until segment index of key is sealed or the recording
// is no longer being written, or ctx ends; then it calls got with rec.mu
// held.
func (s *Store) awaitSegment(ctx context.Context, key string, index uint32, got func(rec *recording)) error {
	rec, err := s.lookup(key)
	if err != nil {
		return err
	}
	for {
		rec.mu.Lock()
		if rec.deleted {
			rec.mu.Unlock()
			return fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		if index < rec.hdr.NextIndex || rec.writer == nil {
			got(rec)
			rec.mu.Unlock()
			return nil
		}
		ch := rec.waitChanLocked()
		rec.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		case <-ch:
		}
	}
}
