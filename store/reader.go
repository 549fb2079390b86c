package store

import (
	"context"
	"encoding/binary"
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
	pos     int      // next packet in seg, cpk or open
	seg     *segment // idx's packets when idx is sealed and read decoded
	open    []Packet // snapshot of the open segment's packets when idx is open
	started bool

	// idx read by chunks (chunk.go): its index, the next chunk to read,
	// the packets of the one read (the slice is reused, their bytes never)
	// and the packets of the next one to skip (a seek's position).
	cidx  *chunkIndex
	chunk int
	cpk   []Packet
	skip  int

	inMu   sync.Mutex // Close may run on another goroutine
	in     *segRef    // the segment the reader is counted in (segmentCache.enter)
	closed bool

	// Pace: the tt of the last packet returned, and of the last one of
	// the segment before, and when that segment was left; bulk: the
	// reader read its last segment faster than bulkRatio × real time.
	lastTT, markTT time.Duration
	markAt         time.Time
	bulk           bool

	// Chunk buffers the caller gave back (Release), to read chunks into:
	// returned counts the packets Next returned; held are the buffers of
	// chunks read since the first Release, oldest first, each with the
	// count at its last packet.
	returned uint64
	recycle  bool
	held     []heldChunk

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: unblocks Next
}

// heldChunk is a chunk buffer whose packets the caller may still use until
// it released the first last packets.
type heldChunk struct {
	buf  []byte
	last uint64
}

// NewReader opens a reader of key positioned at from: on the first packet of
// the key frame at or before from (FlagKeyStart) for recordings with a video
// track (or without track descriptions), on the nearest packet for audio-only
// ones. When no key frame is at or before from, it starts at the first key
// frame, or at the first packet when there is none. A reader from the start
// of a recording that is not live (from at or before its first packet) whose
// first packets before its first key frame are all audio starts at its first
// packet, as a play of the origin does: audio an origin sends just before
// the first video frame is part of the stream. A key frame starts at the
// first packet of its access unit (accessUnitStart). It counts a hit, and the
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
	videoTracks := videoTrackSet(rec.hdr.M.Tracks)
	fromStart := video && !rec.hdr.M.Live && atOrBeforeFirst(segs, open, from)
	rec.mu.Unlock()
	s.mu.Unlock()

	r := &Reader{s: s, rec: rec, closing: make(chan struct{})}
	var p position
	switch {
	case fromStart:
		p, err = s.seekStart(rec, segs, next, open, videoTracks, from)
	case video:
		p, err = s.seekKey(rec, segs, next, open, from)
	default:
		p, err = s.seekNearest(rec, segs, next, open, from)
	}
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	r.idx, r.pos, r.seg = p.idx, p.pos, p.seg
	if p.seg != nil || p.cidx != nil {
		r.setIn(p.idx, true)
	}
	if p.cidx != nil {
		r.cidx, r.pos = p.cidx, 0
		r.chunk = p.cidx.chunkOf(p.pos)
		r.skip = p.pos - int(p.cidx.chunks[r.chunk].first)
	}
	return r, nil
}

// atOrBeforeFirst reports whether from is at or before the first packet of
// a recording made of segs then open (true for an empty one).
func atOrBeforeFirst(segs []SegmentInfo, open []Packet, from time.Duration) bool {
	switch {
	case len(segs) > 0:
		return from <= segs[0].FirstTT
	case len(open) > 0:
		return from <= open[0].TT
	}
	return from <= 0
}

// videoTrackSet marks the video tracks by index.
func videoTrackSet(tracks []Track) map[uint8]bool {
	set := make(map[uint8]bool)
	for i, t := range tracks {
		if t.Media == "video" {
			set[uint8(i)] = true
		}
	}
	return set
}

// seekStart is the start of a recording: its first packet when every packet
// before the access unit of its first key frame is of a track other than
// video (in the first segment), else seekKey's answer.
func (s *Store) seekStart(rec *recording, segs []SegmentInfo, next uint32, open []Packet, video map[uint8]bool, from time.Duration) (position, error) {
	pick := func(pk []Packet) int {
		key := -1
		for i := range pk {
			if pk[i].Flags&FlagKeyStart != 0 {
				key = accessUnitStart(pk, i)
				break
			}
		}
		for i := 0; i < key; i++ {
			if len(video) == 0 || video[pk[i].Track] {
				return -1
			}
		}
		return min(key, 0)
	}
	if len(segs) > 0 {
		p, err := s.seekIn(rec, segs[0].Index, pick)
		if err != nil || p.pos >= 0 {
			return p, err
		}
	} else if pick(open) >= 0 {
		return position{idx: next}, nil
	}
	return s.seekKey(rec, segs, next, open, from)
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
	idx  uint32
	pos  int
	seg  *segment    // decoded idx when sealed and read decoded
	cidx *chunkIndex // idx's chunks when sealed and read by chunks
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
		if found < 0 {
			return found
		}
		return accessUnitStart(pk, found)
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
		p, err := s.seekIn(rec, segs[j].Index, lastKey)
		if err != nil || p.pos >= 0 {
			return p, err
		}
	}
	// No key frame at or before from: the first key frame, else the start.
	firstKey := func(pk []Packet) int {
		for i := range pk {
			if pk[i].Flags&FlagKeyStart != 0 {
				return accessUnitStart(pk, i)
			}
		}
		return -1
	}
	for j := range segs {
		if segs[j].FirstKeyTT < 0 {
			continue
		}
		p, err := s.seekIn(rec, segs[j].Index, firstKey)
		if err != nil || p.pos >= 0 {
			return p, err
		}
	}
	for i := range open {
		if open[i].Flags&FlagKeyStart != 0 {
			return position{idx: next, pos: accessUnitStart(open, i)}, nil
		}
	}
	if len(segs) > 0 {
		return position{idx: segs[0].Index}, nil
	}
	return position{idx: next}, nil
}

// accessUnitStart backs up from the key start pk[i] to the first packet of
// its access unit: earlier packets of the same track with the same RTP
// timestamp and tt and no marker bit (an SEI or an access unit delimiter some
// encoders send before the parameter sets, which the key-start flag, set
// packet by packet, comes too late for). Other tracks' packets in between
// stay, in order.
func accessUnitStart(pk []Packet, i int) int {
	ts, ok := rtpTimestamp(pk[i].RTP)
	if !ok {
		return i
	}
	start := i
	for j := i - 1; j >= 0; j-- {
		if pk[j].Track != pk[i].Track {
			continue
		}
		if t, ok := rtpTimestamp(pk[j].RTP); !ok || t != ts || pk[j].TT != pk[i].TT || pk[j].RTP[1]&0x80 != 0 {
			break
		}
		start = j
	}
	return start
}

// rtpTimestamp reads the timestamp of an RTP packet's fixed header.
func rtpTimestamp(b []byte) (uint32, bool) {
	if len(b) < 12 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[4:8]), true
}

// seekNearest finds the packet whose tt is nearest to from.
func (s *Store) seekNearest(rec *recording, segs []SegmentInfo, next uint32, open []Packet, from time.Duration) (position, error) {
	// Candidate run of packets: the open segment or the last sealed segment
	// starting at or before from.
	if len(open) > 0 && open[0].TT <= from {
		return position{idx: next, pos: nearest(open, from, -1)}, nil
	}
	j := lastAtOrBefore(segs, from)
	if j < 0 {
		if len(segs) > 0 {
			return position{idx: segs[0].Index}, nil
		}
		return position{idx: next}, nil
	}
	var after time.Duration = -1 // tt of the packet following segment j, if any
	afterPos := position{idx: next}
	if j+1 < len(segs) {
		after, afterPos = segs[j+1].FirstTT, position{idx: segs[j+1].Index}
	} else if len(open) > 0 {
		after = open[0].TT
	}
	p, err := s.seekIn(rec, segs[j].Index, func(pk []Packet) int { return nearest(pk, from, after) })
	if err != nil || p.pos >= 0 {
		return p, err
	}
	return afterPos, nil
}

// nearest is the index of the packet of pk whose tt is nearest to from, or
// -1 when the packet after pk, at tt after (-1: none), is nearer.
func nearest(pk []Packet, from, after time.Duration) int {
	i := sort.Search(len(pk), func(i int) bool { return pk[i].TT >= from })
	if i < len(pk) {
		if i > 0 && from-pk[i-1].TT < pk[i].TT-from {
			i--
		}
		return i
	}
	if after >= 0 && after-from < from-pk[len(pk)-1].TT {
		return -1
	}
	return len(pk) - 1
}

// Next returns the next packet in log order. At the tail of a recording that
// is still being written it blocks until an append, Finish, or ctx ends; at
// the end of a finished recording it returns io.EOF. A reader that fell out of
// a live window gets ErrBehindWindow. The returned Packet.RTP must not be
// modified; the store never changes or reuses those bytes (segments are
// immutable, the open one only grows, a chunk's copy is the caller's), so
// it stays valid after later calls, until the caller releases it
// (Release).
func (r *Reader) Next(ctx context.Context) (Packet, error) {
	return r.next(ctx, true)
}

// TryNext is Next without the wait: at the tail of a recording that is
// still being written it returns ErrWouldBlock at once.
func (r *Reader) TryNext() (Packet, error) {
	return r.next(context.Background(), false)
}

func (r *Reader) next(ctx context.Context, block bool) (Packet, error) {
	for {
		if r.seg != nil {
			if r.pos < len(r.seg.packets) {
				r.pos++
				r.started = true
				r.lastTT = r.seg.packets[r.pos-1].TT
				r.returned++
				return r.seg.packets[r.pos-1], nil
			}
			r.left()
			r.idx, r.pos, r.seg = r.idx+1, 0, nil
		}
		if r.cidx != nil {
			if r.pos < len(r.cpk) {
				r.pos++
				r.started = true
				r.lastTT = r.cpk[r.pos-1].TT
				r.returned++
				return r.cpk[r.pos-1], nil
			}
			if err := r.nextChunk(); err != nil {
				return Packet{}, err
			}
			continue
		}
		if r.pos < len(r.open) {
			r.pos++
			r.started = true
			r.returned++
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
			first := rec.hdr.FirstIndex // the next seal moves it (rec.mu)
			rec.mu.Unlock()
			return Packet{}, fmt.Errorf("read segment %d of %s (window starts at %d): %w", r.idx, rec.key, first, ErrBehindWindow)
		case r.idx < rec.hdr.NextIndex:
			rec.mu.Unlock()
			var sg *segment
			var ci *chunkIndex
			var err error
			if r.bulk {
				sg, err = r.s.privateSegment(rec, r.idx)
			} else {
				sg, ci, err = r.s.enterSegment(rec, r.idx)
			}
			if err != nil {
				return Packet{}, err
			}
			r.seg, r.cidx, r.chunk, r.cpk, r.open = sg, ci, 0, r.cpk[:0], nil
			if ci != nil && r.pos > 0 {
				// The reader read the start of this segment while it was
				// open (r.pos packets): go on from there.
				r.chunk = ci.chunkOf(r.pos)
				r.skip, r.pos = r.pos-int(ci.chunks[r.chunk].first), 0
			}
			r.setIn(r.idx, !r.bulk)
			continue
		case rec.pending != nil && r.idx == rec.pendingInfo.Index:
			r.seg, r.open = rec.pending, nil
			r.seg.lent = true
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
		if !block {
			select {
			case <-ch:
				continue
			default:
				return Packet{}, ErrWouldBlock
			}
		}
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

// nextChunk reads the reader's next chunk of r.idx, or, when another reader
// made the segment decoded meanwhile, goes on in that; after the last
// chunk it moves to the next segment.
func (r *Reader) nextChunk() error {
	ci := r.cidx
	if r.chunk >= len(ci.chunks) {
		r.left()
		r.idx, r.pos, r.cidx, r.cpk = r.idx+1, 0, nil, r.cpk[:0]
		return nil
	}
	first := int(ci.chunks[r.chunk].first)
	if sg := r.s.heldSegment(r.rec, r.idx); sg != nil && len(sg.packets) == int(ci.chunks[len(ci.chunks)-1].first+ci.chunks[len(ci.chunks)-1].count) {
		r.seg, r.pos, r.cidx, r.cpk = sg, first+r.skip, nil, r.cpk[:0]
		r.skip = 0
		return nil
	}
	var buf []byte
	if r.recycle {
		buf = getReadBuf()
	}
	pk, used, m, err := r.s.readChunks(r.rec, r.idx, ci, r.chunk, r.cpk[:0], buf)
	if err != nil || cap(used) != cap(buf) {
		putReadBuf(buf) // not used: a run longer than readBytes
	}
	if err != nil {
		return err
	}
	if r.recycle {
		if len(r.held) == maxHeldChunks { // a caller that stopped releasing: forget the oldest
			copy(r.held, r.held[1:])
			r.held = r.held[:len(r.held)-1]
		}
		r.held = append(r.held, heldChunk{buf: used, last: r.returned + uint64(len(pk)-r.skip)})
	}
	r.cpk, r.pos, r.skip = pk, r.skip, 0
	r.chunk += m
	return nil
}

// Release tells the reader that the caller no longer uses the bytes of the
// first n packets Next returned: the reader may read later packets into
// the chunk buffers (chunk.go) that held only those, instead of allocating
// new ones. Without Release a packet's bytes are never reused. Release
// must not be called concurrently with Next.
func (r *Reader) Release(n uint64) {
	r.recycle = true
	done := 0
	for done < len(r.held) && r.held[done].last <= n {
		putReadBuf(r.held[done].buf)
		done++
	}
	if done > 0 {
		rest := copy(r.held, r.held[done:])
		clear(r.held[rest:])
		r.held = r.held[:rest]
	}
}

// maxHeldChunks bounds the read buffers a reader waits for the caller to
// release.
const maxHeldChunks = 64

// setIn counts the reader as in segment idx, or no longer, in the segment
// cache (which shares a segment several readers are in); a closed reader
// is not counted.
func (r *Reader) setIn(idx uint32, on bool) {
	r.inMu.Lock()
	defer r.inMu.Unlock()
	if r.in != nil {
		r.s.cache.leave(*r.in)
		r.in = nil
	}
	if on && !r.closed {
		ref := segRef{r.rec.seq, idx}
		r.s.cache.enter(ref)
		r.in = &ref
	}
}

// left is called as the reader leaves a sealed segment: it is counted in
// none, and reads the next whole when it read this one in bulk.
func (r *Reader) left() {
	r.setIn(0, false)
	now := time.Now()
	if !r.markAt.IsZero() {
		media := r.lastTT - r.markTT
		// A reader whose caller releases packets (Release: a player's
		// replay) is paced by a clock, however fast it caught up after a
		// stall: read whole, each of its segments would be a private copy
		// (a segment's allocation, read and check where chunks cost a
		// read buffer), which under load made a loaded server slower.
		r.bulk = media > 0 && now.Sub(r.markAt) < media/bulkRatio && !r.s.opts.paced && !r.recycle
	}
	r.markTT, r.markAt = r.lastTT, now
}

// Segment is the index of the segment the packet Next last returned is in.
func (r *Reader) Segment() uint32 { return r.idx }

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
		r.inMu.Lock()
		if r.in != nil {
			r.s.cache.leave(*r.in)
			r.in = nil
		}
		r.closed = true
		r.inMu.Unlock()
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
