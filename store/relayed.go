package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"time"
)

// Relayed open segments. A node that tails a peer's on-demand fill gets the
// packets of the peer's open segment as they arrive (AppendRelayed), so its
// players need not wait for the segment to seal. The mesh appends a packet
// only once a checkpoint of a trusted signer names it (fill protocol 1.6,
// mesh/doc.go); the seal that the recording's signer made for the segment
// must still arrive and SealRelayed find the same bytes under it. Until
// then:
//   - the writer never seals them itself (no size or span cut);
//   - Finish drops them: a recording never stores packets whose seal did
//     not come;
//   - a whole segment for the same index (AppendSegmentSealed) replaces
//     them, and KeepUnsealed keeps a prefix of them when a new source
//     continues the segment otherwise; readers past the cut read on at
//     their position in the segment;
//   - an own packet (Append: this node took over from the origin) makes
//     them this writer's: it seals and signs them with its own.

// AppendRelayed adds one packet of a peer's open segment, copying p.RTP,
// to the open segment, without ever sealing it (SealRelayed does). The open
// segment must hold relayed packets only, and may grow to the store's
// largest segment.
func (w *Writer) AppendRelayed(p Packet) error {
	rec := w.rec
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.admitLocked(&p, "append relayed"); err != nil {
		return err
	}
	o := w.open
	switch {
	case w.live:
		return fmt.Errorf("append relayed to %s: a live recording takes packets with Append", rec.key)
	case len(o.packets) > 0 && !o.relayed:
		return fmt.Errorf("append relayed to %s: the open segment holds this node's own packets", rec.key)
	}
	p.TT = p.TT.Truncate(time.Microsecond)
	need := maxRecordHeader + len(p.RTP)
	if o.buf == nil {
		o.buf = newSegmentBuf(o.index, max(w.s.opts.SegmentBytes+segSlack, segHeaderLen+need))
	}
	if len(o.buf)+need > w.s.maxSegment() {
		return fmt.Errorf("append relayed to %s: %w: open segment %d past %d bytes", rec.key, ErrCorrupt, o.index, w.s.maxSegment())
	}
	if len(o.buf)+need > cap(o.buf) {
		// The peer cuts its segments larger than this node would. The
		// packets readers hold keep the old buffer, which no one changes.
		nb := make([]byte, len(o.buf), min(2*cap(o.buf)+need, w.s.maxSegment()))
		copy(nb, o.buf)
		o.buf = nb
	}
	var off int
	o.buf, off = appendRecord(o.buf, &p)
	p.RTP = o.buf[off : off+len(p.RTP) : off+len(p.RTP)]
	o.info.add(&p)
	o.rtpBytes += uint64(len(p.RTP))
	o.relayed = true
	rec.mu.Lock()
	o.packets = append(o.packets, p)
	rec.lastTT, rec.lastPN, rec.hasLast = p.TT, p.PN, true
	rec.notifyLocked()
	rec.mu.Unlock()
	return nil
}

// Relayed returns the relayed packets of the open segment still waiting
// for their seal (nil when there are none). Their RTP must not be modified.
func (w *Writer) Relayed() []Packet {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.open.relayed {
		return nil
	}
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	return w.open.packets[:len(w.open.packets):len(w.open.packets)]
}

// SealRelayed seals the relayed packets of the open segment as segment
// index with the hash and seal their signer made (the caller verified the
// seal): ErrHashMismatch, and nothing sealed, when they encode otherwise.
// It returns once the segment is stored.
func (w *Writer) SealRelayed(index uint32, h Hash, seal Seal) error {
	rec := w.rec
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.open
	switch {
	case w.done:
		return fmt.Errorf("seal relayed segment of %s: %w", rec.key, errFinished)
	case !o.relayed || len(o.packets) == 0:
		return fmt.Errorf("seal relayed segment %d of %s: no relayed packets", index, rec.key)
	case o.index != index:
		return fmt.Errorf("seal relayed segment %d of %s: %w: the open segment is %d", index, rec.key, ErrOutOfOrder, o.index)
	}
	setSegmentCount(o.buf, uint32(len(o.packets)))
	if sha256.Sum256(o.buf) != h {
		return fmt.Errorf("seal relayed segment %d of %s: %w", index, rec.key, ErrHashMismatch)
	}
	w.sealed = len(o.buf)
	si := o.info
	si.Index, si.Size, si.Hash, si.Seal = o.index, uint32(len(o.buf)), h, seal
	si.CRC, si.hasCRC = crc32.Checksum(o.buf, castagnoli), true
	done, err := w.commit(si, &segment{raw: o.buf, packets: o.packets}, o.rtpBytes)
	if err != nil {
		return err
	}
	w.prev = h
	<-done
	return w.sync()
}

// KeepUnsealed keeps the first n relayed packets of the open segment and
// drops the others (a new source continues the segment with other
// packets). Readers keep what they read and go on at their position.
func (w *Writer) KeepUnsealed(n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keepRelayedLocked(n)
}

// keepRelayedLocked is KeepUnsealed; w.mu is held.
func (w *Writer) keepRelayedLocked(n int) error {
	o, rec := w.open, w.rec
	if n >= len(o.packets) {
		return nil
	}
	if !o.relayed {
		return fmt.Errorf("keep %d packets of %s: the open segment holds this node's own packets", n, rec.key)
	}
	// A new buffer: readers' packets alias the old one, which stays as is.
	nb := newSegmentBuf(o.index, cap(o.buf))
	kept := make([]Packet, 0, max(n, 16))
	info := newOpenSegment(o.index).info
	var rtpBytes uint64
	for i := range o.packets[:n] {
		q := o.packets[i]
		var off int
		nb, off = appendRecord(nb, &q)
		q.RTP = nb[off : off+len(q.RTP) : off+len(q.RTP)]
		kept = append(kept, q)
		info.add(&q)
		rtpBytes += uint64(len(q.RTP))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	o.buf, o.packets, o.info, o.rtpBytes, o.relayed = nb, kept, info, rtpBytes, n > 0
	switch {
	case n > 0:
		rec.lastTT, rec.lastPN, rec.hasLast = kept[n-1].TT, kept[n-1].PN, true
	case rec.pending != nil:
		last := &rec.pending.packets[len(rec.pending.packets)-1]
		rec.lastTT, rec.lastPN, rec.hasLast = last.TT, last.PN, true
	default:
		rec.lastTT, rec.lastPN, rec.hasLast = rec.hdr.LastTT, rec.hdr.LastPN, rec.hdr.HasLast
	}
	rec.notifyLocked()
	return nil
}

// replaceRelayedLocked checks that a whole segment at the open segment's
// index may replace the relayed packets the writer holds: it starts at the
// same packet. w.mu is held.
func (w *Writer) replaceRelayedLocked(idx uint32, packets []Packet) error {
	o := w.open
	if !o.relayed {
		return fmt.Errorf("segment %d for %s: writer has unsealed packets", idx, w.rec.key)
	}
	if idx != o.index || packets[0].PN != o.packets[0].PN {
		return fmt.Errorf("segment %d for %s: %w: the relayed open segment is %d from packet %d",
			idx, w.rec.key, ErrOutOfOrder, o.index, o.packets[0].PN)
	}
	return w.keepRelayedLocked(0)
}

// SamePacket says whether a and b are the same record: what a relayed
// packet is compared with when a new source continues its segment.
func SamePacket(a, b *Packet) bool {
	return a.Track == b.Track && a.Flags == b.Flags && a.FT == b.FT && a.PN == b.PN &&
		a.TT.Truncate(time.Microsecond) == b.TT.Truncate(time.Microsecond) && bytes.Equal(a.RTP, b.RTP)
}
