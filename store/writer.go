package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"
)

// ErrOutOfOrder is returned by AppendSegment for a segment whose index is not
// the next one.
var ErrOutOfOrder = errors.New("store: segment out of order")

// segSlack is what a segment buffer holds beyond Options.SegmentBytes.
const segSlack = 4 << 10

// errFinished is returned by a Writer after Finish.
var errFinished = errors.New("writer finished")

// Writer appends to one recording. Its methods are safe for concurrent use,
// though packets are normally appended from one goroutine.
type Writer struct {
	s   *Store
	rec *recording

	mu      sync.Mutex // serializes appends, seals, updates; guards below
	open    *openSegment
	done    bool
	ntracks int    // len(Manifest.Tracks)
	live    bool   // Manifest.Live
	sealed  int    // bytes of the last segment sealed
	tails   []tail // by track: the last packet appended
	sealer  Sealer // signs the segments this writer seals itself; nil: none
	prev    Hash   // hash of the last segment sealed or appended (zero: none)
	spare   func(raw []byte)
}

// SetSealer makes every writer created or resumed from now on sign with sl
// (Writer.SetSealer): a node's mesh sets its identity here.
func (s *Store) SetSealer(sl Sealer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealer = sl
}

// SetSealer makes w sign, with s, every segment it seals from appended
// packets and the recording's end (see Sealer). Segments appended whole
// (AppendSegmentSealed) keep the seal they came with.
func (w *Writer) SetSealer(s Sealer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sealer = s
}

// SetSpare has AppendChecked give back, to fn, the bytes of each segment
// it stored that nothing of the store holds any more once it is stored:
// no reader and no segment cache took it while its commit was in flight,
// and the recording is not live (a live writer keeps its last packets).
// fn runs on AppendChecked's goroutine before it returns; the caller may
// then reuse the bytes (a fill reads the next segment into them, which
// saves allocating and zeroing a buffer per segment). Call it before the
// first append.
func (w *Writer) SetSpare(fn func(raw []byte)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.spare = fn
}

// tail is the last packet appended on a track and when. Its RTP aliases a
// segment buffer, which is never modified below its length.
type tail struct {
	p   Packet
	at  time.Time
	ok  bool
	hdr [12]byte // on demand: p's RTP header (p.RTP is not kept)
}

// openSegment is the writer's unsealed segment. buf is its encoding so far
// (count not yet set); packets alias buf and are visible to readers under
// rec.mu. Neither is modified below its current length, so readers may keep
// what they saw.
type openSegment struct {
	index    uint32
	buf      []byte
	packets  []Packet
	info     SegmentInfo
	rtpBytes uint64
	relayed  bool // its packets are a peer's, waiting for their seal (relayed.go)
}

func newOpenSegment(index uint32) *openSegment {
	return &openSegment{index: index, info: SegmentInfo{FirstKeyTT: -1}}
}

// Create starts a new recording of m.Key, `filling` (or `live` when m.Live).
// Segments, counts and state in m are ignored. ErrExists if key is stored.
func (s *Store) Create(m Manifest) (*Writer, error) {
	if m.Key == "" {
		return nil, fmt.Errorf("create: empty key")
	}
	if len(m.Tracks) > 256 {
		return nil, fmt.Errorf("create %s: %d tracks (at most 256)", m.Key, len(m.Tracks))
	}
	if !s.opts.InMemory && !s.Storing() {
		return nil, fmt.Errorf("create %s: %w", m.Key, ErrNoSpace)
	}
	now := time.Now()
	m.SDP = bytes.Clone(m.SDP)
	m.Tracks = append([]Track(nil), m.Tracks...)
	m.Via = append([]string(nil), m.Via...)
	m.Segments, m.Packets, m.Bytes, m.Received, m.Created = nil, 0, 0, 0, now
	m.EndSeal = nil
	m.State = StateFilling
	if m.Live {
		m.State = StateLive
	}
	s.mu.Lock()
	if s.isClosed() {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := s.recs[m.Key]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("create %s: %w", m.Key, ErrExists)
	}
	id := StreamID(m.Key)
	delete(s.broken, id)
	rec := &recording{key: m.Key, id: id, seq: s.nextSeq, segsLoaded: true}
	sealer := s.sealer
	s.nextSeq++
	rec.hdr = header{Seq: rec.seq, M: m, AutoDur: m.Duration == 0 || m.Live, LastAccess: now}
	h := rec.hdr
	w := &Writer{s: s, rec: rec, open: newOpenSegment(0), ntracks: len(m.Tracks), live: m.Live, sealer: sealer}
	rec.writer, rec.open = w, w.open
	s.recs[m.Key] = rec
	s.mu.Unlock()

	rec.wmu.Lock()
	err := s.writeHeader(rec, &h)
	rec.wmu.Unlock()
	if err != nil {
		s.mu.Lock()
		delete(s.recs, m.Key)
		s.mu.Unlock()
		return nil, fmt.Errorf("create %s: %w", m.Key, err)
	}
	s.log.Debug("recording created", "stream", id, "live", m.Live)
	return w, nil
}

// Resume reopens a partial recording to append more; its sealed segments are
// kept and the next packet goes into a new segment.
func (s *Store) Resume(key string) (*Writer, error) {
	if !s.opts.InMemory && !s.Storing() {
		return nil, fmt.Errorf("resume %s: %w", key, ErrNoSpace)
	}
	rec, err := s.lookup(key)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	rec.wmu.Lock()
	defer rec.wmu.Unlock()
	rec.mu.Lock()
	switch {
	case rec.deleted:
		rec.mu.Unlock()
		return nil, fmt.Errorf("resume %s: %w", key, ErrNotFound)
	case rec.writer != nil:
		rec.mu.Unlock()
		return nil, fmt.Errorf("resume %s: %w: a writer is open", key, ErrBusy)
	case rec.hdr.M.State != StatePartial:
		rec.mu.Unlock()
		return nil, fmt.Errorf("resume %s: state is %s, not partial", key, rec.hdr.M.State)
	}
	h := rec.hdr
	h.M.State = StateFilling
	h.M.EndSeal = nil
	var prev Hash
	if n := len(rec.segs); n > 0 {
		prev = rec.segs[n-1].Hash
	}
	if h.M.Live {
		h.M.State = StateLive
	}
	rec.mu.Unlock()
	if err := s.writeHeader(rec, &h); err != nil {
		return nil, fmt.Errorf("resume %s: %w", key, err)
	}
	s.mu.Lock()
	sealer := s.sealer
	s.mu.Unlock()
	w := &Writer{s: s, rec: rec, open: newOpenSegment(h.NextIndex), ntracks: len(h.M.Tracks), live: h.M.Live, prev: prev, sealer: sealer}
	rec.mu.Lock()
	rec.hdr.M.State, rec.hdr.M.EndSeal = h.M.State, nil
	rec.writer, rec.open = w, w.open
	rec.notifyLocked()
	rec.mu.Unlock()
	return w, nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Append adds one packet, copying p.RTP; it seals the open segment when it
// reaches Options.SegmentBytes or spans Options.SegmentSpan. tt is kept to
// the microsecond.
func (w *Writer) Append(p Packet) error {
	rec := w.rec
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.admitLocked(&p, "append"); err != nil {
		return err
	}
	p.TT = p.TT.Truncate(time.Microsecond)
	o := w.open
	o.relayed = false // relayed packets before it are this writer's now: it signs them
	need := maxRecordHeader + len(p.RTP)
	span := w.s.opts.SegmentSpan
	if w.live {
		span = w.s.opts.LiveSegmentSpan
	}
	if len(o.packets) > 0 && (p.TT-o.info.FirstTT >= span || len(o.buf)+need > cap(o.buf)) {
		if err := w.seal(); err != nil {
			return err
		}
		o = w.open
	}
	if o.buf == nil {
		// Room for SegmentBytes plus a little: a packet that does not fit
		// seals the segment first (above), so the buffer never grows and the
		// RTP slices readers hold stay put.
		size := max(w.s.opts.SegmentBytes+segSlack, segHeaderLen+maxRecordHeader+MaxPacketBytes)
		if w.live && w.sealed > 0 {
			// A live segment is cut by time (LiveSegmentSpan), far below
			// SegmentBytes (2 Mbit/s fills 25 KiB of 256 in 100 ms): size
			// it from the last one, so the window and the segment cache
			// hold about what they count.
			size = min(size, max(2*w.sealed, segHeaderLen+need))
		}
		o.buf = newSegmentBuf(o.index, size)
	}
	var off int
	o.buf, off = appendRecord(o.buf, &p)
	p.RTP = o.buf[off : off+len(p.RTP) : off+len(p.RTP)]
	o.info.add(&p)
	o.rtpBytes += uint64(len(p.RTP))
	rec.mu.Lock()
	o.packets = append(o.packets, p)
	rec.lastTT, rec.lastPN, rec.hasLast = p.TT, p.PN, true
	rec.notifyLocked()
	rec.mu.Unlock()
	if w.live {
		w.noteTail(&p, time.Now())
	} else {
		w.noteHeader(&p)
	}
	if len(o.buf) >= w.s.opts.SegmentBytes {
		return w.seal()
	}
	return nil
}

// admitLocked refuses packet p, which what (a verb) would add: too small
// or too large, on a track the recording lacks, or the writer finished or
// its store closed. w.mu is held.
func (w *Writer) admitLocked(p *Packet, what string) error {
	key := w.rec.key
	switch {
	case len(p.RTP) == 0 || len(p.RTP) > MaxPacketBytes:
		return fmt.Errorf("%s to %s: packet of %d bytes", what, key, len(p.RTP))
	case w.ntracks > 0 && int(p.Track) >= w.ntracks:
		return fmt.Errorf("%s to %s: track %d of %d", what, key, p.Track, w.ntracks)
	case w.done:
		return fmt.Errorf("%s to %s: %w", what, key, errFinished)
	case w.s.isClosed():
		return ErrClosed
	}
	return nil
}

// AppendSegment stores a sealed segment received from a peer at the next
// index. The hash and the encoding are verified before anything is stored:
// ErrHashMismatch, ErrCorrupt, ErrOutOfOrder. The first segment of an empty
// live recording may start at any index (a peer's window).
func (w *Writer) AppendSegment(data []byte, h Hash) error {
	return w.AppendSegmentSealed(data, h, Seal{})
}

// AppendSegmentSealed is AppendSegment for a segment that carries its
// provenance seal, kept with it (the caller has verified it).
func (w *Writer) AppendSegmentSealed(data []byte, h Hash, seal Seal) error {
	c, err := w.Check(data, h)
	if err != nil {
		return err
	}
	return w.AppendChecked(c, seal)
}

// CheckedSegment is a segment received from a peer whose size, hash and
// encoding Writer.Check (or CheckOwned) verified: its bytes, decoded. Only Check
// makes one, so AppendChecked stores nothing unverified.
type CheckedSegment struct {
	raw     []byte
	hash    Hash
	crc     uint32 // CRC-32C of raw, kept for the chunk checks of later reads
	index   uint32
	packets []Packet
}

// Check verifies a segment received from a peer — its size, its hash
// (ErrHashMismatch) and its encoding (ErrCorrupt) — and copies it, so that
// the caller may reuse data. It takes no lock and changes nothing: a fill
// checks the next segment on its reading goroutine while the previous one
// is stored.
func (w *Writer) Check(data []byte, h Hash) (CheckedSegment, error) {
	if err := w.checkSize(data); err != nil {
		return CheckedSegment{}, err
	}
	return w.CheckOwned(bytes.Clone(data), h)
}

// CheckOwned is Check without the copy: the segment keeps data, which the
// caller must not change afterwards (a fill reads each segment into a
// buffer of its own, and the store takes it: one copy of every byte
// fewer).
func (w *Writer) CheckOwned(data []byte, h Hash) (CheckedSegment, error) {
	key := w.rec.key
	if err := w.checkSize(data); err != nil {
		return CheckedSegment{}, err
	}
	if sha256.Sum256(data) != h {
		return CheckedSegment{}, fmt.Errorf("segment for %s: %w", key, ErrHashMismatch)
	}
	idx, packets, err := decodeSegment(data)
	if err != nil {
		return CheckedSegment{}, fmt.Errorf("segment for %s: %w", key, err)
	}
	// The CRC is computed here too, on the fill's checking goroutine, not in
	// AppendChecked, which every commit of the recording waits for.
	crc := crc32.Checksum(data, castagnoli)
	return CheckedSegment{raw: data, hash: h, crc: crc, index: idx, packets: packets}, nil
}

// checkSize refuses a segment larger than the store takes (ErrCorrupt).
func (w *Writer) checkSize(data []byte) error {
	if limit := w.s.maxSegment(); len(data) > limit {
		return fmt.Errorf("segment for %s: %w: %d bytes (at most %d)", w.rec.key, ErrCorrupt, len(data), limit)
	}
	return nil
}

// AppendChecked stores a segment that Check verified at the next index,
// with its provenance seal (the caller has verified it): ErrCorrupt for a
// packet on a track the recording does not have, ErrOutOfOrder for a
// segment that does not continue the recording.
func (w *Writer) AppendChecked(c CheckedSegment, seal Seal) error {
	rec := w.rec
	if c.raw == nil {
		return fmt.Errorf("segment for %s: %w: not checked", rec.key, ErrCorrupt)
	}
	raw, h, idx, packets := c.raw, c.hash, c.index, c.packets
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range packets {
		if n := w.ntracks; n > 0 && int(packets[i].Track) >= n {
			return fmt.Errorf("segment %d for %s: %w: packet %d on track %d of %d", idx, rec.key, ErrCorrupt, i, packets[i].Track, n)
		}
	}
	if w.done {
		return fmt.Errorf("append to %s: %w", rec.key, errFinished)
	}
	if len(w.open.packets) > 0 {
		// Relayed packets of the same segment, which it replaces.
		if err := w.replaceRelayedLocked(idx, packets); err != nil {
			return err
		}
	}
	rec.mu.Lock()
	want, empty := w.open.index, len(rec.segs) == 0 && rec.pending == nil && !rec.hasLast
	rec.mu.Unlock()
	if idx != want && !(empty && w.live) {
		return fmt.Errorf("segment %d for %s: %w: want %d", idx, rec.key, ErrOutOfOrder, want)
	}
	// Two nodes that filled from the origin independently cut their packet
	// logs into different segments: a segment continues this recording only
	// if its first packet is the one after the last stored.
	rec.mu.Lock()
	hasLast, lastPN := rec.hasLast, rec.lastPN
	rec.mu.Unlock()
	if hasLast && !w.live && packets[0].PN != lastPN+1 {
		return fmt.Errorf("segment %d for %s: %w: starts at packet %d, want %d", idx, rec.key, ErrOutOfOrder, packets[0].PN, lastPN+1)
	}
	si := segmentInfo(packets)
	si.Index, si.Size, si.Hash, si.Seal = idx, uint32(len(raw)), h, seal
	si.CRC, si.hasCRC = c.crc, true
	var rtpBytes uint64
	for i := range packets {
		rtpBytes += uint64(len(packets[i].RTP))
	}
	last := &packets[len(packets)-1]
	rec.mu.Lock()
	rec.lastTT, rec.lastPN, rec.hasLast = last.TT, last.PN, true
	rec.mu.Unlock()
	sg := &segment{raw: raw, packets: packets}
	done, err := w.commit(si, sg, rtpBytes)
	if err != nil {
		return err
	}
	w.prev = h
	if w.live {
		now := time.Now()
		for i := range packets {
			w.noteTail(&packets[i], now)
		}
	} else {
		for i := range packets {
			w.noteHeader(&packets[i])
		}
	}
	<-done // stored when AppendSegment returns
	if err := w.sync(); err != nil {
		return err
	}
	if w.spare != nil && !w.live {
		// The commit completed: the segment is no longer pending, so no
		// reader can take it from here on; lent says whether one did.
		rec.mu.Lock()
		lent := sg.lent
		rec.mu.Unlock()
		if !lent {
			w.spare(raw)
		}
	}
	return nil
}

// Last returns the last appended packet's tt and pn (open segment included).
func (w *Writer) Last() (tt time.Duration, pn uint64, ok bool) {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	return w.rec.lastTT, w.rec.lastPN, w.rec.hasLast
}

// noteTail records p as its track's last packet. w.mu is held.
func (w *Writer) noteTail(p *Packet, at time.Time) {
	for len(w.tails) <= int(p.Track) {
		w.tails = append(w.tails, tail{})
	}
	w.tails[p.Track] = tail{p: *p, at: at, ok: true}
}

// noteHeader records p as its track's last packet of an on-demand
// recording: its RTP header only (the segment's buffer may be reused once
// stored). w.mu is held.
func (w *Writer) noteHeader(p *Packet) {
	for len(w.tails) <= int(p.Track) {
		w.tails = append(w.tails, tail{})
	}
	t := &w.tails[p.Track]
	t.p, t.ok = *p, copy(t.hdr[:], p.RTP) == len(t.hdr)
	t.p.RTP = nil
}

// TrackTail returns the last packet this writer appended on track and
// when it was appended; false when there is none. Of a live recording
// the packet is whole (its RTP must not be modified): a live recording
// that changes sources continues each track from it. Of an on-demand
// one, its RTP is the header alone (12 bytes, a copy) and the time is
// zero: an origin session that resumes the recording continues its
// numbers.
func (w *Writer) TrackTail(track uint8) (Packet, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if int(track) >= len(w.tails) || !w.tails[track].ok {
		return Packet{}, time.Time{}, false
	}
	t := w.tails[track]
	if !w.live {
		t.p.RTP = t.hdr[:]
	}
	return t.p, t.at, true
}

// Manifest returns a copy of the recording's manifest.
func (w *Writer) Manifest() Manifest {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	return w.rec.manifestLocked()
}

// Update changes header fields persistently: SDP, Tracks, Freshness,
// Duration, Source, Via, MetaInfo, Live, ClassReason and Ended. Other fields
// are the store's and changes to them are ignored, except that a recording
// still being written that changes Live changes State with it (filling for
// on demand, live for live): an origin's PLAY answer may classify a stream
// again before its first packet.
func (w *Writer) Update(fn func(m *Manifest)) error {
	rec := w.rec
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return fmt.Errorf("update %s: %w", rec.key, errFinished)
	}
	rec.wmu.Lock()
	defer rec.wmu.Unlock()
	rec.mu.Lock()
	m := rec.manifestLocked()
	h := rec.hdr
	rec.mu.Unlock()
	fn(&m)
	if len(m.Tracks) > 256 {
		return fmt.Errorf("update %s: %d tracks", rec.key, len(m.Tracks))
	}
	if m.Duration != h.M.Duration {
		h.AutoDur = false
	}
	h.M.SDP, h.M.Tracks, h.M.Freshness = bytes.Clone(m.SDP), append([]Track(nil), m.Tracks...), m.Freshness
	h.M.Duration, h.M.Source, h.M.MetaInfo, h.M.Live = m.Duration, m.Source, m.MetaInfo, m.Live
	h.M.Via = append([]string(nil), m.Via...)
	h.M.Ended, h.M.ClassReason = m.Ended, m.ClassReason
	h.M.EndSeal = bytes.Clone(m.EndSeal)
	if h.M.Live != w.live {
		h.M.State, h.AutoDur = StateFilling, h.M.Duration == 0
		if h.M.Live {
			h.M.State, h.AutoDur = StateLive, true
		}
	}
	if err := w.s.writeHeader(rec, &h); err != nil {
		return fmt.Errorf("update %s: %w", rec.key, err)
	}
	rec.mu.Lock()
	h.Hits, h.LastAccess, h.Pinned = rec.hdr.Hits, rec.hdr.LastAccess, rec.hdr.Pinned
	rec.hdr = h
	rec.mu.Unlock()
	w.ntracks, w.live = len(h.M.Tracks), h.M.Live
	return nil
}

// SetClock keeps track's RTP↔NTP mapping (Track.Clock) persistently;
// readers see it at once (Reader.Clock).
func (w *Writer) SetClock(track uint8, c Clock) error {
	var bad bool
	err := w.Update(func(m *Manifest) {
		if bad = int(track) >= len(m.Tracks); !bad {
			m.Tracks[track].Clock = c
		}
	})
	if err == nil && bad {
		err = fmt.Errorf("set clock of %s: no track %d", w.rec.key, track)
	}
	return err
}

// Finish seals the open segment and ends the fill as StateComplete or
// StatePartial. Readers at the end then get io.EOF. Finish is idempotent.
func (w *Writer) Finish(st State) error {
	rec := w.rec
	if st != StateComplete && st != StatePartial {
		return fmt.Errorf("finish %s: state %q", rec.key, st)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	if w.open.relayed {
		// Their seal never came: they are not stored (relayed.go).
		_ = w.keepRelayedLocked(0)
	}
	sealErr := w.seal()
	rec.wmu.Lock() // waits for the last commit
	defer rec.wmu.Unlock()
	rec.mu.Lock()
	failed := rec.commitErr
	h := rec.hdr
	rec.mu.Unlock()
	if sealErr != nil && failed == nil {
		failed = sealErr
	}
	if failed != nil {
		// What is durable stays; the recording can never be complete.
		st = StatePartial
	}
	h.M.State = st
	if (st == StateComplete || h.M.Ended) && h.M.EndSeal == nil && w.sealer != nil {
		seal, err := w.sealer.SealEnd(&h.M, h.NextIndex, w.prev)
		if err != nil {
			w.s.log.Warn("cannot sign the end of the recording", "stream", rec.id, "err", err)
		}
		h.M.EndSeal = seal
	}
	if err := w.s.writeHeader(rec, &h); err != nil && failed == nil {
		return fmt.Errorf("finish %s: %w", rec.key, err)
	}
	w.done = true
	rec.mu.Lock()
	rec.hdr.M.State, rec.hdr.M.EndSeal = st, h.M.EndSeal
	rec.writer, rec.open, rec.pending = nil, nil, nil
	rec.touchLocked(false)
	rec.notifyLocked()
	rec.mu.Unlock()
	if failed != nil {
		return fmt.Errorf("finish %s: %w", rec.key, failed)
	}
	w.s.addUsed(0)
	w.s.log.Debug("recording finished", "stream", rec.id, "state", st)
	return nil
}
