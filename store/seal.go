package store

import (
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// seal writes the open segment, if it has packets, without waiting for the
// Badger commit. w.mu is held.
func (w *Writer) seal() error {
	o := w.open
	if len(o.packets) == 0 {
		return nil
	}
	setSegmentCount(o.buf, uint32(len(o.packets)))
	w.sealed = len(o.buf)
	si := o.info
	si.Index, si.Size, si.Hash = o.index, uint32(len(o.buf)), sha256.Sum256(o.buf)
	si.CRC, si.hasCRC = crc32.Checksum(o.buf, castagnoli), true
	if w.sealer != nil {
		w.rec.mu.Lock()
		m := w.rec.hdr.M
		w.rec.mu.Unlock()
		seal, err := w.sealer.SealSegment(&m, &si, w.prev)
		if err != nil {
			return fmt.Errorf("sign segment %d of %s: %w", si.Index, w.rec.key, err)
		}
		si.Seal = seal
	}
	if _, err := w.commit(si, &segment{raw: o.buf, packets: o.packets}, o.rtpBytes); err != nil {
		return err
	}
	w.prev = si.Hash
	return nil
}

// commit stores a sealed segment, its info and the updated header in one
// Badger transaction; for a live recording the header's first index moves
// past segments that left the window (their keys are dropped later, by block:
// see queueBlockDrops). w.mu is held.
//
// The commit is pipelined: the caller goes on filling the next segment while
// Badger writes this one (appending waits for Badger otherwise most of the
// time). rec.wmu is held from here until the commit completed, so the next
// seal, header writes and Finish wait for it and headers land in order.
// Meanwhile readers find the segment in rec.pending; the manifest, Segment
// and WaitSegment show it only once it is durable. The returned channel is
// closed when the commit completed.
func (w *Writer) commit(si SegmentInfo, sg *segment, rtpBytes uint64) (<-chan struct{}, error) {
	s, rec := w.s, w.rec
	rec.wmu.Lock()
	rec.mu.Lock()
	h, segs, failed := rec.hdr, rec.segs, rec.commitErr
	rec.mu.Unlock()
	if failed != nil {
		rec.wmu.Unlock()
		return nil, failed
	}

	si.rtpBytes = rtpBytes
	c := &sealCommit{s: s, rec: rec, si: si, segs: segs, done: make(chan struct{})}
	c.h, c.drop, c.freed = sealedHeader(h, segs, si, sg, s.opts.LiveWindow)
	hb, err := encodeHeader(&c.h)
	if err != nil {
		rec.wmu.Unlock()
		return nil, fmt.Errorf("seal segment %d of %s: %w", si.Index, rec.key, err)
	}
	// Quota and free space are checked before anything changes: a refused
	// segment leaves the writer as it was (the caller ends the fill).
	c.grow = int64(si.Size) - c.freed + int64(len(hb))
	if err := s.admitSegment(c.grow); err != nil {
		rec.wmu.Unlock()
		return nil, fmt.Errorf("seal segment %d of %s: %w", si.Index, rec.key, err)
	}

	// Readers see the segment (pending) while Badger writes it; readers
	// following the fill (a live stream's, a player's of a filling VOD)
	// find it in the segment cache after. A fill nobody reads (a prefetch)
	// leaves the cache alone: at Speed 64 its sealed segments held the
	// whole cache (32 MiB of heap by default) for segmentTTL after the
	// fill, while players joined the new recording.
	w.open = newOpenSegment(si.Index + 1)
	rec.mu.Lock()
	if rec.readers > 0 {
		s.cache.add(segRef{rec.seq, si.Index}, sg)
		sg.lent = true
	}
	rec.pending, rec.pendingInfo = sg, si
	rec.open = w.open
	if len(segs) == 0 {
		rec.baseIndex = si.Index
	}
	rec.notifyLocked()
	rec.mu.Unlock()

	if err := s.writeSegment(rec, si, sg, hb, c.completed); err != nil {
		c.completed(err)
		return nil, fmt.Errorf("seal segment %d of %s: %w", si.Index, rec.key, err)
	}
	if len(segs) > 0 {
		// The previous segment's commit completed (rec.wmu was free): the
		// pages Badger wrote it through leave this process's resident
		// memory, while Badger writes this one.
		s.releaseStored(rec, segs[len(segs)-1].Index)
	}
	return c.done, nil
}

// sealedHeader is h once segment si (holding sg) is sealed after segs: counts,
// last packet, duration, and for a live recording the segments that fall out
// of the window (the first drop of segs, freed bytes).
func sealedHeader(h header, segs []SegmentInfo, si SegmentInfo, sg *segment, window time.Duration) (_ header, drop int, freed int64) {
	if len(segs) == 0 {
		h.FirstIndex = si.Index
	}
	h.NextIndex = si.Index + 1
	h.M.Packets += uint64(si.Packets)
	h.M.Bytes += si.rtpBytes
	h.M.Received += si.rtpBytes
	h.StoredBytes += int64(si.Size)
	last := &sg.packets[len(sg.packets)-1]
	h.LastTT, h.LastPN, h.HasLast = last.TT, last.PN, true
	if h.M.Live {
		for drop < len(segs) && si.LastTT-segs[drop].LastTT > window {
			freed += int64(segs[drop].Size)
			h.M.Packets -= min(uint64(segs[drop].Packets), h.M.Packets)
			h.M.Bytes -= min(segs[drop].rtpOf(), h.M.Bytes)
			drop++
		}
		h.FirstIndex += uint32(drop)
		h.StoredBytes -= freed
	}
	if h.AutoDur {
		first := si.FirstTT
		if drop < len(segs) {
			first = segs[drop].FirstTT
		}
		h.M.Duration = si.LastTT
		if h.M.Live {
			h.M.Duration = si.LastTT - first
		}
	}
	return h, drop, freed
}

// sealCommit is one segment's commit in flight: what the recording becomes
// once Badger has written it. It holds rec.wmu until completed.
type sealCommit struct {
	s     *Store
	rec   *recording
	si    SegmentInfo
	h     header        // the header after the commit
	segs  []SegmentInfo // the segments before it
	drop  int           // of segs, dropped from a live window
	freed int64         // bytes of the dropped segments
	grow  int64         // bytes admitted for it
	done  chan struct{}
}

// completed applies the commit's outcome, releases rec.wmu and closes done.
func (c *sealCommit) completed(err error) {
	s, rec, si, h := c.s, c.rec, c.si, c.h
	s.releaseSegment(c.grow)
	rec.mu.Lock()
	if err != nil {
		rec.commitErr = fmt.Errorf("seal segment %d of %s: %w", si.Index, rec.key, err)
	} else {
		// Access statistics may have changed meanwhile; they are not the writer's.
		h.Hits, h.LastAccess, h.Pinned = rec.hdr.Hits, rec.hdr.LastAccess, rec.hdr.Pinned
		rec.hdr = h
		rec.segs = append(c.segs[c.drop:], si)
		rec.pending = nil
	}
	rec.notifyLocked()
	rec.mu.Unlock()
	rec.wmu.Unlock()
	if err == nil {
		if c.drop > 0 {
			s.cache.drop(rec.seq, h.FirstIndex)
			s.queueBlockDrops(rec.seq, h.FirstIndex-uint32(c.drop), h.FirstIndex)
		}
		s.mu.Lock()
		s.written += int64(si.Size)
		s.mu.Unlock()
		s.addUsed(int64(si.Size) - c.freed)
	}
	close(c.done)
}

// writeSegment writes segment si, its info and the header hb in one Badger
// transaction, committed asynchronously: completed gets its outcome. An
// error before the commit starts is returned instead.
func (s *Store) writeSegment(rec *recording, si SegmentInfo, sg *segment, hb []byte, completed func(error)) error {
	return s.withDB(func(db *badger.DB) error {
		txn := db.NewTransaction(true)
		set := func() error {
			if err := txn.Set(segKey(pfxSeg, rec.seq, si.Index), sg.raw); err != nil {
				return err
			}
			if err := txn.Set(segKey(pfxInfo, rec.seq, si.Index), encodeSegInfo(&si)); err != nil {
				return err
			}
			return txn.Set(headerKey(rec.key), hb)
		}
		if err := set(); err != nil {
			txn.Discard()
			return err
		}
		s.inflight.Add(1)
		s.writeMu.RLock()
		txn.CommitWith(func(err error) {
			defer s.inflight.Done()
			s.writeMu.RUnlock()
			completed(err)
		})
		return nil
	})
}

// sync waits for the writer's commit in flight, if any, and returns its error.
func (w *Writer) sync() error {
	rec := w.rec
	rec.wmu.Lock()
	defer rec.wmu.Unlock()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.commitErr
}

// addUsed changes the quota usage and starts eviction when it is exceeded.
func (s *Store) addUsed(d int64) {
	s.mu.Lock()
	s.used += d
	over := s.opts.MaxBytes > 0 && s.used > s.opts.MaxBytes
	s.mu.Unlock()
	if over {
		s.kickEviction()
	}
}

// rtpOf is the RTP bytes of the segment: exact for one sealed by this
// process, else its size less the record headers, which take about 10
// bytes a packet.
func (si *SegmentInfo) rtpOf() uint64 {
	if si.rtpBytes > 0 {
		return si.rtpBytes
	}
	return uint64(max(int64(si.Size)-segHeaderLen-10*int64(si.Packets), 0))
}
