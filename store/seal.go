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
// time), and a writer whose commit depth is more than one (SetCommitDepth)
// goes on while Badger writes up to that many of its segments. rec.wmu is
// taken by a commit that finds none in flight and released by the
// completion that leaves none in flight, so header writes, Finish and
// deletion wait for them all and headers land in order. Each commit's
// header follows from the previous commit's (rec.wh, rec.wsegs), and
// completions are applied in commit order, though Badger runs each
// callback on a goroutine of its own. Meanwhile readers find the segments
// in rec.pendq; the manifest, Segment and WaitSegment show each only once
// it is applied. The returned channel is closed when the commit was
// applied.
//
// A failed commit fails the recording's later commits, and those already
// in flight are not applied, though Badger may have written them: their
// headers name the failed segment. Finish writes the header as applied
// (up to the failed segment, partial) over them; if the process ends
// before that, loading the recording finds the failed segment missing and
// keeps the recording out of service (recording.go).
func (w *Writer) commit(si SegmentInfo, sg *segment, rtpBytes uint64) (<-chan struct{}, error) {
	s, rec := w.s, w.rec
	depth := max(w.depth, 1)
	rec.mu.Lock()
	for rec.inflight >= depth {
		ch := rec.waitChanLocked()
		rec.mu.Unlock()
		<-ch
		rec.mu.Lock()
	}
	// This commit counts as in flight from here, so a completion meanwhile
	// does not find none in flight and leaves rec.wmu with the writer.
	first := rec.inflight == 0
	rec.inflight++
	rec.mu.Unlock()
	if first {
		// None in flight (only this writer starts commits): take rec.wmu
		// from header writes and deletion. The completion that left none
		// in flight may not have released it yet.
		rec.wmu.Lock()
	}
	rec.mu.Lock()
	h, segs, prev, failed := rec.wh, rec.wsegs, rec.applied, rec.commitErr
	if first {
		h, segs, prev = rec.hdr, rec.segs, nil
	}
	rec.mu.Unlock()
	abort := func() {
		rec.mu.Lock()
		rec.inflight--
		last := rec.inflight == 0
		rec.notifyLocked()
		rec.mu.Unlock()
		if last {
			rec.wmu.Unlock()
		}
	}
	if failed != nil {
		abort()
		return nil, failed
	}

	si.rtpBytes = rtpBytes
	c := &sealCommit{s: s, rec: rec, si: si, prev: prev, done: make(chan struct{})}
	c.h, c.drop, c.freed = sealedHeader(h, segs, si, sg, s.opts.LiveWindow)
	hb, err := encodeHeader(&c.h)
	if err != nil {
		abort()
		return nil, fmt.Errorf("seal segment %d of %s: %w", si.Index, rec.key, err)
	}
	// Quota and free space are checked before anything changes: a refused
	// segment leaves the writer as it was (the caller ends the fill).
	c.grow = int64(si.Size) - c.freed + int64(len(hb))
	if err := s.admitSegment(c.grow); err != nil {
		abort()
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
	// The segments after this commit, rec.segs once it is applied: appended
	// under rec.mu, past every length a reader holds.
	c.after = append(segs[c.drop:], si)
	c.applied = make(chan struct{})
	rec.wh, rec.wsegs, rec.applied = c.h, c.after, c.applied
	rec.pendq = append(rec.pendq, pendingSeg{sg: sg, si: si})
	rec.open = w.open
	if len(segs) == 0 {
		rec.baseIndex = si.Index
	}
	// The stored segments whose commits were applied since the last seal
	// (the first time, the last one only, as for a writer of depth one).
	var from, to uint32
	if n := len(rec.segs); n > 0 {
		to = rec.segs[n-1].Index + 1
		from = to - 1
		if w.releasedSet {
			from = max(w.releaseNext, rec.segs[0].Index)
		}
	}
	rec.notifyLocked()
	rec.mu.Unlock()

	if err := s.writeSegment(rec, si, sg, hb, c.completed); err != nil {
		c.completed(err)
		return nil, fmt.Errorf("seal segment %d of %s: %w", si.Index, rec.key, err)
	}
	// The pages Badger wrote those segments through leave this process's
	// resident memory, while Badger writes this one.
	for i := from; i < to; i++ {
		s.releaseStored(rec, i)
	}
	if to > 0 {
		w.releaseNext, w.releasedSet = max(w.releaseNext, to), true
	}
	return c.done, nil
}

// MaxCommitDepth bounds Writer.SetCommitDepth.
const MaxCommitDepth = 8

// pendingSeg is a sealed segment whose commit is in flight.
type pendingSeg struct {
	sg *segment
	si SegmentInfo
}

// pendingAt is pending segment idx, or nil. rec.mu is held.
func (r *recording) pendingAt(idx uint32) *segment {
	for i := range r.pendq {
		if r.pendq[i].si.Index == idx {
			return r.pendq[i].sg
		}
	}
	return nil
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
// once Badger has written it.
type sealCommit struct {
	s       *Store
	rec     *recording
	si      SegmentInfo
	h       header        // the header after the commit
	after   []SegmentInfo // the segments after it
	drop    int           // of segs, dropped from a live window
	freed   int64         // bytes of the dropped segments
	grow    int64         // bytes admitted for it
	prev    chan struct{} // the previous commit's applied (nil: none in flight)
	applied chan struct{} // closed once this one is applied
	done    chan struct{}
}

// completed applies the commit's outcome once the previous commit's is
// applied, releases rec.wmu if it was the last in flight, and closes done.
func (c *sealCommit) completed(err error) {
	if c.prev != nil {
		<-c.prev
	}
	s, rec, si, h := c.s, c.rec, c.si, c.h
	s.releaseSegment(c.grow)
	rec.mu.Lock()
	if len(rec.pendq) > 0 {
		rec.pendq[0] = pendingSeg{}
		rec.pendq = rec.pendq[1:]
	}
	ok := err == nil && rec.commitErr == nil
	if err != nil && rec.commitErr == nil {
		rec.commitErr = fmt.Errorf("seal segment %d of %s: %w", si.Index, rec.key, err)
	}
	if ok {
		// Access statistics may have changed meanwhile; they are not the writer's.
		h.Hits, h.LastAccess, h.Pinned = rec.hdr.Hits, rec.hdr.LastAccess, rec.hdr.Pinned
		rec.hdr = h
		rec.segs = c.after
	}
	rec.inflight--
	last := rec.inflight == 0
	if last {
		rec.pendq, rec.wsegs = nil, nil
	}
	rec.notifyLocked()
	rec.mu.Unlock()
	close(c.applied)
	if last {
		rec.wmu.Unlock()
	}
	if ok {
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
			if s.opts.afterCommit != nil {
				err = s.opts.afterCommit(rec.key, si.Index, err)
			}
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
