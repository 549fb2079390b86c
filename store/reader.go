package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Reader returns one recording's packets in log order from a position. Many
// readers of one recording may run at once; one Reader is used by one
// goroutine at a time.
type Reader struct {
	s   *Store
	rec *recording

	idx     uint32   // segment being read
	pos     int      // next packet in it
	seg     *segment // idx's packets when idx is sealed
	open    []Packet // snapshot of the open segment's packets when idx is open
	started bool

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: unblocks Next
}

// NewReader opens a reader of key positioned at from: on the first packet of
// the key frame at or before from (FlagKeyStart) for recordings with a video
// track (or without track descriptions), on the nearest packet for audio-only
// ones. When no key frame is at or before from, it starts at the first key
// frame, or at the first packet when there is none. It counts a hit, and the
// recording is not evicted while the reader is open.
func (s *Store) NewReader(key string, from time.Duration) (*Reader, error) {
	rec, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	rec.mu.Lock()
	if rec.deleted {
		rec.mu.Unlock()
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	rec.readers++
	rec.touchLocked(true)
	segs := rec.segs
	if rec.pending != nil {
		segs = append(segs[:len(segs):len(segs)], rec.pendingInfo)
	}
	next := rec.hdr.NextIndex
	var open []Packet
	if rec.open != nil {
		open, next = rec.open.packets, rec.open.index
	}
	video := hasVideo(rec.hdr.M.Tracks)
	rec.mu.Unlock()
	s.mu.Unlock()

	r := &Reader{s: s, rec: rec, closing: make(chan struct{})}
	var p position
	if video {
		p, err = s.seekKey(rec, segs, next, open, from)
	} else {
		p, err = s.seekNearest(rec, segs, next, open, from)
	}
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	r.idx, r.pos, r.seg = p.idx, p.pos, p.seg
	return r, nil
}

func hasVideo(tracks []Track) bool {
	if len(tracks) == 0 {
		return true
	}
	for _, t := range tracks {
		if t.Media == "video" {
			return true
		}
	}
	return false
}

type position struct {
	idx uint32
	pos int
	seg *segment // decoded idx when sealed and already loaded
}

// lastAtOrBefore returns the index into segs of the last segment whose first
// packet is at or before from, or -1.
func lastAtOrBefore(segs []SegmentInfo, from time.Duration) int {
	return sort.Search(len(segs), func(i int) bool { return segs[i].FirstTT > from }) - 1
}

// seekKey finds the last FlagKeyStart packet at or before from.
func (s *Store) seekKey(rec *recording, segs []SegmentInfo, next uint32, open []Packet, from time.Duration) (position, error) {
	lastKey := func(pk []Packet) int {
		found := -1
		for i := range pk {
			if pk[i].TT > from && pk[i].Flags&FlagKeyStart != 0 {
				break
			}
			if pk[i].Flags&FlagKeyStart != 0 {
				found = i
			}
		}
		return found
	}
	if len(open) > 0 && open[0].TT <= from {
		if i := lastKey(open); i >= 0 {
			return position{idx: next, pos: i}, nil
		}
	}
	for j := lastAtOrBefore(segs, from); j >= 0; j-- {
		if k := segs[j].FirstKeyTT; k < 0 || k > from {
			continue
		}
		sg, err := s.segment(rec, segs[j].Index)
		if err != nil {
			return position{}, err
		}
		if i := lastKey(sg.packets); i >= 0 {
			return position{idx: segs[j].Index, pos: i, seg: sg}, nil
		}
	}
	// No key frame at or before from: the first key frame, else the start.
	for j := range segs {
		if segs[j].FirstKeyTT < 0 {
			continue
		}
		sg, err := s.segment(rec, segs[j].Index)
		if err != nil {
			return position{}, err
		}
		for i := range sg.packets {
			if sg.packets[i].Flags&FlagKeyStart != 0 {
				return position{idx: segs[j].Index, pos: i, seg: sg}, nil
			}
		}
	}
	for i := range open {
		if open[i].Flags&FlagKeyStart != 0 {
			return position{idx: next, pos: i}, nil
		}
	}
	if len(segs) > 0 {
		return position{idx: segs[0].Index}, nil
	}
	return position{idx: next}, nil
}

// seekNearest finds the packet whose tt is nearest to from.
func (s *Store) seekNearest(rec *recording, segs []SegmentInfo, next uint32, open []Packet, from time.Duration) (position, error) {
	// Candidate run of packets: the open segment or the last sealed segment
	// starting at or before from.
	var pk []Packet
	var p position
	var after time.Duration = -1 // tt of the packet following pk, if any
	var afterPos position
	if len(open) > 0 && open[0].TT <= from {
		pk, p = open, position{idx: next}
	} else if j := lastAtOrBefore(segs, from); j >= 0 {
		sg, err := s.segment(rec, segs[j].Index)
		if err != nil {
			return position{}, err
		}
		pk, p = sg.packets, position{idx: segs[j].Index, seg: sg}
		if j+1 < len(segs) {
			after, afterPos = segs[j+1].FirstTT, position{idx: segs[j+1].Index}
		} else if len(open) > 0 {
			after, afterPos = open[0].TT, position{idx: next}
		}
	} else {
		if len(segs) > 0 {
			return position{idx: segs[0].Index}, nil
		}
		return position{idx: next}, nil
	}
	i := sort.Search(len(pk), func(i int) bool { return pk[i].TT >= from })
	if i < len(pk) {
		if i > 0 && from-pk[i-1].TT < pk[i].TT-from {
			i--
		}
		p.pos = i
		return p, nil
	}
	if after >= 0 && after-from < from-pk[len(pk)-1].TT {
		return afterPos, nil
	}
	p.pos = len(pk) - 1
	return p, nil
}

// Next returns the next packet in log order. At the tail of a recording that
// is still being written it blocks until an append, Finish, or ctx ends; at
// the end of a finished recording it returns io.EOF. A reader that fell out of
// a live window gets ErrBehindWindow. The returned Packet.RTP must not be
// modified; the store never changes or reuses those bytes (segments are
// immutable, the open one only grows), so it stays valid after later calls.
func (r *Reader) Next(ctx context.Context) (Packet, error) {
	for {
		if r.seg != nil {
			if r.pos < len(r.seg.packets) {
				r.pos++
				r.started = true
				return r.seg.packets[r.pos-1], nil
			}
			r.idx, r.pos, r.seg = r.idx+1, 0, nil
		}
		if r.pos < len(r.open) {
			r.pos++
			r.started = true
			return r.open[r.pos-1], nil
		}
		select {
		case <-r.closing:
			return Packet{}, fmt.Errorf("read %s: %w", r.rec.key, errReaderClosed)
		case <-r.s.done:
			return Packet{}, ErrClosed
		default:
		}
		rec := r.rec
		rec.mu.Lock()
		switch {
		case rec.deleted:
			rec.mu.Unlock()
			return Packet{}, fmt.Errorf("read %s: %w", rec.key, ErrNotFound)
		case r.idx < rec.baseIndex && !r.started:
			// Opened on an empty recording whose first segment came from a
			// peer's live window at a later index.
			r.idx, r.pos, r.open = rec.hdr.FirstIndex, 0, nil
			rec.mu.Unlock()
			continue
		case r.idx < rec.hdr.FirstIndex:
			rec.mu.Unlock()
			return Packet{}, fmt.Errorf("read segment %d of %s (window starts at %d): %w", r.idx, rec.key, rec.hdr.FirstIndex, ErrBehindWindow)
		case r.idx < rec.hdr.NextIndex:
			rec.mu.Unlock()
			sg, err := r.s.segment(rec, r.idx)
			if err != nil {
				return Packet{}, err
			}
			r.seg, r.open = sg, nil
			continue
		case rec.pending != nil && r.idx == rec.pendingInfo.Index:
			r.seg, r.open = rec.pending, nil
			rec.mu.Unlock()
			continue
		case rec.open != nil && r.idx == rec.open.index && len(rec.open.packets) > r.pos:
			r.open = rec.open.packets
			rec.mu.Unlock()
			continue
		case rec.writer == nil:
			rec.mu.Unlock()
			return Packet{}, io.EOF
		}
		ch := rec.waitChanLocked()
		rec.mu.Unlock()
		select {
		case <-ctx.Done():
			return Packet{}, ctx.Err()
		case <-r.s.done:
			return Packet{}, ErrClosed
		case <-r.closing:
			return Packet{}, fmt.Errorf("read %s: %w", rec.key, errReaderClosed)
		case <-ch:
		}
	}
}

// Clock is the recording's RTP↔NTP mapping of track now (Track.Clock): a
// writer may learn or update it while the reader reads.
func (r *Reader) Clock(track uint8) (Clock, bool) {
	r.rec.mu.Lock()
	defer r.rec.mu.Unlock()
	tr := r.rec.hdr.M.Tracks
	if int(track) >= len(tr) || tr[track].Clock.IsZero() {
		return Clock{}, false
	}
	return tr[track].Clock, true
}

// Close releases the reader; the recording becomes evictable again when it
// has no readers and no writer. Close may be called from another goroutine
// to end a blocked Next, and more than once.
func (r *Reader) Close() error {
	r.closeOnce.Do(func() {
		close(r.closing)
		rec := r.rec
		rec.mu.Lock()
		rec.readers--
		rec.touchLocked(false)
		rec.mu.Unlock()
		r.s.addUsed(0)
	})
	return nil
}

// errReaderClosed is returned by Next after Close.
var errReaderClosed = errors.New("reader closed")
