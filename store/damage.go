package store

import (
	"crypto/sha256"
	"fmt"
	"hash/crc32"
)

// Local reads verify (DESIGN §8: a disk can rot). Every segment read from
// Badger is checked before a byte of it is served: against the CRC-32C its
// segment info holds, or, for a segment stored before there was one, its
// SHA-256. CRC-32C rather than SHA-256 for every read: the disk is not an
// adversary (peers are, and seals cover them), a 32-bit CRC catches any
// burst of rot, and with the CPU's CRC instruction it runs at several GB/s
// where SHA-256 runs at about 1.7 and would halve sequential reads
// (BenchmarkSegmentVerify, BenchmarkReadSequential).

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// verifySegment checks raw, read from disk as segment idx of rec, against
// its stored checksum.
func (s *Store) verifySegment(rec *recording, idx uint32, raw []byte) error {
	rec.mu.Lock()
	var si SegmentInfo
	ok := idx >= rec.hdr.FirstIndex && int(idx-rec.hdr.FirstIndex) < len(rec.segs)
	if ok {
		si = rec.segs[idx-rec.hdr.FirstIndex]
	}
	rec.mu.Unlock()
	switch {
	case !ok:
	case si.hasCRC && crc32.Checksum(raw, castagnoli) != si.CRC:
		return corruptf("stored bytes do not match the segment's CRC-32C")
	case !si.hasCRC && sha256.Sum256(raw) != si.Hash:
		return corruptf("stored bytes do not match the segment's hash")
	}
	return nil
}

// damaged handles segment idx of rec found damaged on a read: it logs it,
// and cuts the recording before it and marks it partial, so that the next
// fill resumes there from a peer or the origin (the repair). A recording
// still being written, or a live one, is only logged: its fill goes on and a
// live window drops the segment soon. It is called with no lock held.
func (s *Store) damaged(rec *recording, idx uint32, why error) {
	s.log.Error("stored segment damaged: ending its reads; the recording is cut there and marked partial so the next fill repairs it",
		"stream", rec.key, "segment", idx, "err", why)
	if err := s.cutAt(rec, idx); err != nil {
		s.log.Warn("cannot cut the damaged recording", "stream", rec.key, "segment", idx, "err", err)
	}
}

// cutAt drops segments idx and later from rec's header and marks it partial.
// Their keys stay until they are overwritten by the repair or the recording
// is deleted (readers never look past the header's next index).
func (s *Store) cutAt(rec *recording, idx uint32) error {
	rec.wmu.Lock()
	defer rec.wmu.Unlock()
	rec.mu.Lock()
	first := rec.hdr.FirstIndex
	if rec.deleted || rec.writer != nil || rec.hdr.M.Live || idx < first || idx >= rec.hdr.NextIndex || !rec.segsLoaded {
		rec.mu.Unlock()
		return nil
	}
	keep := rec.segs[:idx-first]
	h := rec.hdr
	h.NextIndex = idx
	h.M.State, h.M.EndSeal = StatePartial, nil
	h.M.Packets, h.M.Bytes, h.StoredBytes, h.HasLast = 0, 0, 0, false
	h.LastTT, h.LastPN = 0, 0
	for i := range keep {
		h.M.Packets += uint64(keep[i].Packets)
		h.M.Bytes += keep[i].rtpOf()
		h.StoredBytes += int64(keep[i].Size)
	}
	if n := len(keep); n > 0 {
		last := &keep[n-1]
		h.LastTT, h.LastPN, h.HasLast = last.LastTT, last.FirstPN+uint64(last.Packets)-1, true
	}
	freed := rec.hdr.StoredBytes - h.StoredBytes
	rec.mu.Unlock()
	if err := s.writeHeader(rec, &h); err != nil {
		return fmt.Errorf("cut %s at segment %d: %w", rec.key, idx, err)
	}
	rec.mu.Lock()
	h.Hits, h.LastAccess, h.Pinned = rec.hdr.Hits, rec.hdr.LastAccess, rec.hdr.Pinned
	rec.hdr = h
	rec.segs = keep[:len(keep):len(keep)]
	rec.lastTT, rec.lastPN, rec.hasLast = h.LastTT, h.LastPN, h.HasLast
	rec.notifyLocked()
	rec.mu.Unlock()
	s.cache.dropFrom(rec.seq, idx)
	s.addUsed(-freed)
	return nil
}
