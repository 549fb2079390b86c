package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rtspmesh/rtspmesh/store"
)

// Client side buffers.
const (
	readBuffer = 64 << 10
	// readChunk is how much of a segment is read under one read deadline,
	// so a slow but moving link is not taken for a stalled one.
	readChunk = 256 << 10
	// pipelineDepth is how many checked segments may wait for the store,
	// and checkDepth how many read ones may wait for their check, so that
	// the network, the checks and the store work at the same time.
	pipelineDepth = 4
	checkDepth    = 2
	// deepPipeline and deepCheck are the same for the first deepFills
	// fills at once (Run, limits.go): the network and the checks go on
	// further while the store stalls (a value-log rotation, a page fault
	// in the value log) and catch up when it does.
	deepPipeline = 8
	deepCheck    = 3
	// segmentBytes is what the resource manager is told a segment takes
	// (the store's default size).
	segmentBytes = 256 << 10
)

// PeerFill is one fill from one peer: the stream after the answer, until
// Run has copied the peer's segments into a writer.
type PeerFill struct {
	m      *Mesh
	s      network.Stream
	br     *bufio.Reader
	peer   string
	from   uint32
	open   bool // asked for an on-demand recording's open segment (flagOpen)
	mf     store.Manifest
	digest store.Hash // of mf: what every seal signs
	stall  time.Duration
	log    *slog.Logger

	mu     sync.Mutex
	ran    bool
	closed bool
	clean  bool // the end frame was read: Close may close rather than reset

	free chan []byte // packet buffers the store is done with

	onSegment func(index uint32) // tests and benchmarks: a segment was stored
	splice    Splice             // nil: live packets are stored as they come
}

// A Splice re-bases the packets of a live relay whose recording came from
// another origin session until now (a healed partition: its own numbers,
// times and RTP timestamps start elsewhere). Its methods run on Run's
// goroutine.
type Splice interface {
	// Packet re-bases p in place (its RTP may be changed); false drops it.
	Packet(p *store.Packet) bool
	// Clock re-bases a track's RTP↔NTP mapping; false drops it.
	Clock(track uint8, c store.Clock) (store.Clock, bool)
}

// SetSplice makes Run pass every live packet and clock through s instead
// of skipping what the writer already holds. Call it before Run.
func (pf *PeerFill) SetSplice(s Splice) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	pf.splice = s
}

// AnswerBound is how long the peer phase of a miss may take after the
// lookup: providers are asked in parallel, each within AnswerTimeout on top
// of its round trip; this bounds them all together.
func (m *Mesh) AnswerBound() time.Duration { return m.cfg.AnswerTimeout + answerSlack }

// answerSlack is what AnswerBound allows beyond AnswerTimeout for round
// trips and connection set-up.
const answerSlack = 500 * time.Millisecond

// OpenFill asks provider p for key from segment index from, and reads the
// answer: the peer's manifest. ErrNotProvided when the peer does not hold the
// recording (a stale provider), ErrUnavailable when it cannot serve from that
// segment. The caller must Close the PeerFill.
func (m *Mesh) OpenFill(ctx context.Context, p Provider, key string, from uint32) (*PeerFill, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("open fill: %w", err)
	}
	id, err := peer.Decode(p.ID)
	if err != nil {
		return nil, fmt.Errorf("open fill: provider id: %w", err)
	}
	if id == m.host.ID() {
		return nil, errors.New("open fill: the provider is this node")
	}
	if m.closing.Err() != nil {
		return nil, fmt.Errorf("open fill from %s: %w", id, ErrClosed)
	}
	for _, s := range p.Addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			m.host.Peerstore().AddAddr(id, a, peerstore.TempAddrTTL)
		}
	}
	// A provider answers within AnswerTimeout on top of its round trip,
	// connection set-up included (a few round trips).
	answer := m.cfg.AnswerTimeout + 4*p.RTT
	octx, cancel := context.WithTimeout(ctx, answer)
	defer cancel()
	if len(m.host.Network().ConnsToPeer(id)) == 0 && len(m.host.Peerstore().Addrs(id)) == 0 {
		if ai, err := m.dht.FindPeer(octx, id); err == nil {
			m.host.Peerstore().AddAddrs(id, ai.Addrs, peerstore.TempAddrTTL)
		}
	}
	s, err := m.host.NewStream(octx, id, FillProtocol)
	if err != nil {
		return nil, fmt.Errorf("open fill from %s: %w", id, err)
	}
	fail := func(err error) (*PeerFill, error) {
		_ = s.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("open fill from %s: %w", id, err)
	}
	if err := s.Scope().SetService(serviceName); err != nil {
		return fail(err)
	}
	stop := context.AfterFunc(octx, func() { _ = s.Reset() })
	_ = s.SetDeadline(time.Now().Add(answer))
	// An on-demand recording's open segment is relayed packet by packet,
	// each packet named by a checkpoint of the node that fills it from the
	// origin (doc.go, "Provenance"): asked, as live packets are, of
	// trusted signers only.
	open := m.trust.trusts(id)
	if _, err := s.Write(appendRequest(nil, fillRequest{Key: key, From: from, Open: open})); err != nil {
		stop()
		return fail(err)
	}
	var r io.Reader = s
	if m.cfg.WrapFill != nil {
		r = m.cfg.WrapFill(id.String(), s)
	}
	br := bufio.NewReaderSize(r, readBuffer)
	mf, err := readAnswer(br)
	if !stop() {
		return fail(context.DeadlineExceeded)
	}
	if err != nil {
		if errors.Is(err, ErrNotProvided) {
			m.distrust(id, key, false, err) // it announced a key it does not hold
		}
		return fail(err)
	}
	if mf.Key != key {
		m.distrust(id, key, true, ErrProtocol)
		return fail(fmt.Errorf("%w: answered for another key", ErrProtocol))
	}
	if mf.Live && !m.trust.trusts(id) {
		// Live packets past the sealed segments carry no origin signature:
		// only a trusted relay may send them.
		return fail(fmt.Errorf("%w: live relay %s", ErrUntrusted, id))
	}
	_ = s.SetDeadline(time.Time{})
	mf.Source = id.String()
	stall := m.cfg.StallTimeout
	if mf.Live {
		stall = min(stall, LiveStallTimeout)
	}
	return &PeerFill{
		m:      m,
		s:      s,
		br:     br,
		peer:   id.String(),
		from:   from,
		open:   open && !mf.Live,
		mf:     mf,
		digest: HeaderDigest(&mf),
		stall:  stall,
		log:    m.log.With("fill_from", id.String(), "stream", key),
	}, nil
}

// Manifest is the peer's manifest header: Segments, Packets and Bytes are
// empty (they arrive with the segments), Source is the peer's id, State is
// the peer's state when it answered.
func (pf *PeerFill) Manifest() store.Manifest { return pf.mf }

// Peer is the id of the peer this fill reads from.
func (pf *PeerFill) Peer() string { return pf.peer }

// Close ends the fill's stream. It is idempotent.
func (pf *PeerFill) Close() {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.closed {
		return
	}
	pf.closed = true
	if pf.clean {
		_ = pf.s.Close()
	} else {
		_ = pf.s.Reset()
	}
}

// received is one frame handed from the network reader to the store.
type received struct {
	f    frame
	data []byte               // a packet or clock frame's payload; a segment's until checked
	seg  store.CheckedSegment // a segment frame's, checked by checkSegments
	err  error
}

// Run copies the peer's segments into w, which must be at the segment the
// fill was opened at. Each segment is verified before it is stored: its
// seal as it is read, then its hash and encoding (w.CheckOwned) on a
// goroutine of their own, so that reading the next segment, checking one
// and storing the one before overlap. For a recording the peer is still
// filling, Run follows it until it ends. It returns nil when the peer's
// recording ended complete and every segment is stored, or when the origin
// ended the live stream the peer relayed (w's manifest then says Ended);
// otherwise an error (ErrBadSegment, ErrStalled, ErrBehind, ErrPeerPartial,
// a stream error, ctx's error), after which w holds only verified segments
// and the fill can resume elsewhere. Run may be called once; it does not
// Finish w.
func (pf *PeerFill) Run(parent context.Context, w *store.Writer) error {
	pf.mu.Lock()
	if pf.ran || pf.closed {
		pf.mu.Unlock()
		return errors.New("peer fill: Run called twice or after Close")
	}
	pf.ran = true
	pf.mu.Unlock()

	if next := w.Manifest().NextSegment(); next != pf.from && pf.from != FromLiveEdge {
		return fmt.Errorf("fill from %s: writer is at segment %d, the fill was opened at %d", pf.peer, next, pf.from)
	}
	// Buffers in flight, as the resource manager sees them: within the
	// fills' own budget (limits.go), so at any priority.
	if err := pf.s.Scope().ReserveMemory(fillReserve, network.ReservationPriorityAlways); err != nil {
		return fmt.Errorf("fill from %s: %w", pf.peer, err)
	}
	defer pf.s.Scope().ReleaseMemory(fillReserve)
	depth, checks := pipelineDepth, checkDepth
	// Deeper for the first deepFills fills at once, whose budget leaves
	// room for every other fill's shallow pipeline.
	if pf.m.deep.Add(1) <= deepFills && pf.s.Scope().ReserveMemory(deepReserve, network.ReservationPriorityAlways) == nil {
		defer pf.s.Scope().ReleaseMemory(deepReserve)
		depth, checks = deepPipeline, deepCheck
	}
	defer pf.m.deep.Add(-1)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = pf.s.Reset() })
	defer stop()

	ch := chain{t: pf.m.trust, digest: pf.digest, live: pf.mf.Live}
	if m := w.Manifest(); len(m.Segments) > 0 {
		h := m.Segments[len(m.Segments)-1].Hash
		ch.prev = &h
	} else if !pf.mf.Live || pf.from == 0 {
		ch.prev = &store.Hash{} // the first segment follows none
	}
	start := time.Now()
	pf.free = make(chan []byte, depth+checks+2)
	// Segment buffers the store let go of come back for the next segments.
	w.SetSpare(pf.recycle)
	defer w.SetSpare(nil)
	read := make(chan received, checks)
	items := make(chan received, depth)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(read)
		pf.readFrames(ctx, read, &ch)
	})
	wg.Go(func() {
		defer close(items)
		checkSegments(ctx, read, items, w)
	})
	n, bytes, err := pf.store(items, w)
	if (errors.Is(err, ErrBadSeal) || errors.Is(err, ErrUntrusted) || errors.Is(err, ErrBadSegment)) && !errors.Is(err, ErrUnsigned) {
		pf.m.distrust(pf.s.Conn().RemotePeer(), pf.mf.Key, true, err)
	}
	if err != nil {
		_ = pf.s.Reset() // unblocks the reader
	}
	cancel()
	wg.Wait()
	if err == nil {
		pf.mu.Lock()
		pf.clean = true
		pf.mu.Unlock()
	} else if parent.Err() != nil && !errors.Is(err, ErrBadSegment) {
		// The reset was ours: what the stream said after it (a reset, or
		// an EOF that reads like a protocol violation) is not the peer's
		// doing. A normal stop (a live relay's players left) says why.
		err = parent.Err()
		if c := context.Cause(parent); c != err {
			err = fmt.Errorf("%w: %w", err, c)
		}
	}
	took := time.Since(start)
	pf.log.Debug("peer fill ended", "segments", n, "bytes", bytes, "took", took,
		"MBps", float64(bytes)/1e6/max(took.Seconds(), 1e-9), "err", err)
	if err != nil {
		return fmt.Errorf("fill from %s: %w", pf.peer, err)
	}
	return nil
}

// store appends what the reader hands over, in order, until the end frame.
func (pf *PeerFill) store(items <-chan received, w *store.Writer) (n int, bytes int64, err error) {
	next := pf.from
	skip := pf.from == FromLiveEdge
	var behind liveLag
	// The hash of the last segment stored, which the end seal names.
	var last store.Hash
	if m := w.Manifest(); len(m.Segments) > 0 {
		last = m.Segments[len(m.Segments)-1].Hash
	}
	var open openSegment
	if pf.open {
		open.have = w.Relayed() // a previous source's, which this one continues
	}
	for it := range items {
		switch {
		case it.err != nil:
			return n, bytes, it.err
		case it.f.Type == frameSegment:
			if n == 0 && next == 0 && pf.mf.Live && it.f.Index > 0 {
				next = it.f.Index // a live window starts where the peer's does
			}
			if it.f.Index != next {
				return n, bytes, fmt.Errorf("%w: segment %d where %d was due", ErrProtocol, it.f.Index, next)
			}
			// The reader verified the seal (chain.check), checkSegments the
			// bytes (w.CheckOwned).
			if err := w.AppendChecked(it.seg, it.f.Seal); err != nil {
				if errors.Is(err, store.ErrCorrupt) {
					return n, bytes, fmt.Errorf("%w: segment %d: %w", ErrBadSegment, next, err)
				}
				return n, bytes, fmt.Errorf("store segment %d: %w", next, err)
			}
			open = openSegment{}
			last = it.f.Hash
			pf.m.bytesIn.Add(uint64(it.f.Len))
			if pf.onSegment != nil {
				pf.onSegment(next)
			}
			n++
			bytes += int64(it.f.Len)
			next++
		case it.f.Type == framePacket && !pf.mf.Live:
			p, err := store.DecodeRecord(it.data)
			if err != nil {
				return n, bytes, fmt.Errorf("%w: packet of open segment %d: %w", ErrBadSegment, next, err)
			}
			if err := open.append(w, p); err != nil {
				return n, bytes, fmt.Errorf("store relayed packet: %w", err)
			}
			pf.recycle(it.data) // AppendRelayed keeps a copy
			pf.m.bytesIn.Add(uint64(len(p.RTP)))
			bytes += int64(len(p.RTP))
		case it.f.Type == frameSeal:
			if it.f.Index != next {
				return n, bytes, fmt.Errorf("%w: seal of segment %d where %d was due", ErrProtocol, it.f.Index, next)
			}
			// The reader verified the seal (chain.check); the packets must
			// be what it signed.
			if err := open.seal(w, next, it.f.Hash, it.f.Seal); err != nil {
				if errors.Is(err, store.ErrHashMismatch) {
					return n, bytes, fmt.Errorf("%w: segment %d: %w", ErrRelayedSeal, next, err)
				}
				return n, bytes, fmt.Errorf("store relayed segment %d: %w", next, err)
			}
			last = it.f.Hash
			if pf.onSegment != nil {
				pf.onSegment(next)
			}
			n++
			next++
		case it.f.Type == framePacket:
			p, err := store.DecodeRecord(it.data)
			if err != nil {
				return n, bytes, fmt.Errorf("%w: packet after segment %d: %w", ErrBadSegment, int64(next)-1, err)
			}
			if pf.splice != nil {
				if !pf.splice.Packet(&p) {
					pf.recycle(it.data)
					continue
				}
			} else if skip {
				// From a new source's live edge: drop what the writer already
				// has (the same upstream numbers packets alike), within a
				// second, in case this source numbers them differently.
				if tt, pn, ok := w.Last(); ok && p.PN <= pn && p.TT <= tt+time.Second {
					pf.recycle(it.data)
					continue
				}
				skip = false
			}
			if err := behind.check(p.TT, time.Now()); err != nil {
				return n, bytes, err
			}
			if err := w.Append(p); err != nil {
				return n, bytes, fmt.Errorf("store live packet: %w", err)
			}
			pf.recycle(it.data)
			pf.m.bytesIn.Add(uint64(len(p.RTP)))
			bytes += int64(len(p.RTP))
		case it.f.Type == frameClock:
			if int(it.f.Track) >= len(pf.mf.Tracks) {
				return n, bytes, fmt.Errorf("%w: clock of track %d, the recording has %d", ErrProtocol, it.f.Track, len(pf.mf.Tracks))
			}
			c := it.f.Clock
			if pf.splice != nil {
				var ok bool
				if c, ok = pf.splice.Clock(it.f.Track, c); !ok {
					continue
				}
			}
			if err := w.SetClock(it.f.Track, c); err != nil {
				return n, bytes, fmt.Errorf("store the clock of track %d: %w", it.f.Track, err)
			}
		case it.f.Type == frameEnd:
			if it.f.Ended && pf.mf.Live {
				// The origin ended the live stream: a clean end here too.
				if err := w.SetEnded(); err != nil {
					return n, bytes, fmt.Errorf("mark the live stream ended: %w", err)
				}
				return n, bytes, nil
			}
			if it.f.State != store.StateComplete {
				return n, bytes, fmt.Errorf("%w after segment %d", ErrPeerPartial, int64(next)-1)
			}
			if it.f.Index != next {
				return n, bytes, fmt.Errorf("%w: end frame says %d segments, %d received", ErrProtocol, it.f.Index, next)
			}
			if _, err := pf.m.trust.verifyEnd(pf.digest, next, last, endComplete, uint64(it.f.Duration), it.f.EndSeal); err != nil {
				return n, bytes, err // a truncated recording passed off as complete
			}
			if err := w.Update(func(m *store.Manifest) { m.EndSeal = it.f.EndSeal }); err != nil {
				return n, bytes, fmt.Errorf("keep the end seal: %w", err)
			}
			if d := it.f.Duration; d > 0 && d != w.Manifest().Duration {
				if err := w.Update(func(m *store.Manifest) { m.Duration = d }); err != nil {
					return n, bytes, fmt.Errorf("update duration: %w", err)
				}
			}
			return n, bytes, nil
		}
	}
	return n, bytes, fmt.Errorf("%w: stream ended without an end frame", ErrProtocol)
}

// openSegment follows the packets of the open segment a fill of an on-demand
// recording relays, between two seals.
type openSegment struct {
	have []store.Packet // relayed packets the writer held at the start: a previous source's
	pos  int            // packets of the segment received so far
}

// append stores the next relayed packet p of the segment. A packet the
// writer already holds from a previous source at the same position is
// skipped; at the first one that differs, the writer keeps only those
// before it (its readers read on at their position).
func (o *openSegment) append(w *store.Writer, p store.Packet) error {
	i := o.pos
	o.pos++
	if i < len(o.have) {
		if store.SamePacket(&o.have[i], &p) {
			return nil
		}
		o.have = nil
		if err := w.KeepUnsealed(i); err != nil {
			return err
		}
	}
	return w.AppendRelayed(p)
}

// seal seals the segment's relayed packets with the hash and seal their
// signer made, and starts the next segment.
func (o *openSegment) seal(w *store.Writer, index uint32, h store.Hash, seal store.Seal) error {
	if o.pos < len(o.have) {
		// The segment ended before what a previous source relayed of it.
		if err := w.KeepUnsealed(o.pos); err != nil {
			return err
		}
	}
	*o = openSegment{}
	return w.SealRelayed(index, h, seal)
}

// chain checks the seal of each segment frame as it is read, before its
// bytes are (doc.go, "Provenance"): on the reader's goroutine, so that the
// signature checks overlap the store's appends.
type chain struct {
	t       *trust
	digest  store.Hash
	live    bool
	prev    *store.Hash // what the next seal must name; nil: as it says
	started bool
}

func (c *chain) check(f *frame) error {
	p := c.prev
	if !c.started && c.live && f.Index > 0 && p != nil && *p == (store.Hash{}) {
		p = nil // a live window that starts later: its first seal says what it follows
	}
	if _, err := c.t.verifySeal(c.digest, f.Index, f.Hash, p, &f.Seal); err != nil {
		return err
	}
	h := f.Hash
	c.prev, c.started = &h, true
	return nil
}

// readFrames reads frames into out until the end frame or an error. It
// verifies each segment's seal here, before reading its bytes; their hash
// and encoding are checkSegments' (the next segment is read meanwhile).
func (pf *PeerFill) readFrames(ctx context.Context, out chan<- received, ch *chain) {
	send := func(r received) bool {
		select {
		case out <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var hold *liveHold // relayed packets (live, or an open segment) until a checkpoint names them
	if pf.mf.Live || pf.open {
		hold = &liveHold{t: pf.m.trust, digest: pf.digest, key: pf.mf.Key, log: &pf.m.checkpoints}
	}
	// release hands on what hold no longer holds; false when the fill is over.
	release := func(err error) bool {
		if err != nil {
			send(received{err: err})
			return false
		}
		for _, r := range hold.ready() {
			if !send(r) {
				return false
			}
		}
		return true
	}
	var armed time.Time // when the read deadline was last set
	for {
		if now := time.Now(); pf.br.Buffered() == 0 || now.Sub(armed) > pf.stall/4 {
			// Nothing for the stall timeout from now is a stall, and a
			// packet held for CheckpointWait a lie. Set only when the next
			// frame is read from the stream, or now and then: per frame it
			// costs more than relaying the packet.
			_ = pf.s.SetReadDeadline(hold.deadline(now.Add(pf.stall)))
			armed = now
		}
		f, err := readFrame(pf.br)
		if err != nil {
			// A held packet's deadline ends the read before a stall's. Only
			// a read that found nothing is overdue: a frame read late (this
			// goroutine kept from running on a loaded machine) may be the
			// checkpoint, sent in time, and is handled first.
			if herr := hold.overdue(time.Now()); herr != nil {
				err = herr
			} else {
				err = pf.readErr(err)
			}
			send(received{err: err})
			return
		}
		switch f.Type {
		case frameKeepalive:
			continue
		case frameEnd:
			send(received{f: f})
			return
		case framePacket:
			if !pf.mf.Live && !pf.open {
				send(received{err: fmt.Errorf("%w: a packet frame in a fill that is not live", ErrProtocol)})
				return
			}
		case frameSeal:
			if !pf.open {
				send(received{err: fmt.Errorf("%w: a seal frame in a fill that did not ask for the open segment", ErrProtocol)})
				return
			}
			if err := ch.check(&f); err != nil {
				send(received{err: err})
				return
			}
			if hold.other(received{f: f}) {
				continue // behind a packet held: the seal applies once its packets are verified
			}
			if !send(received{f: f}) {
				return
			}
			continue
		case frameSegment:
			if err := ch.check(&f); err != nil {
				send(received{err: err})
				return
			}
		case frameClock:
			if !pf.mf.Live {
				send(received{err: fmt.Errorf("%w: a clock frame in a fill that is not live", ErrProtocol)})
				return
			}
			if hold.other(received{f: f}) {
				continue // behind a packet held
			}
			if !send(received{f: f}) {
				return
			}
			continue
		case frameCheckpoint:
			if hold == nil {
				send(received{err: fmt.Errorf("%w: a checkpoint in a fill that is neither live nor open", ErrProtocol)})
				return
			}
			if !release(hold.checkpoint(f.Raw)) {
				return
			}
			continue
		}
		// A segment's buffer goes to the store (CheckOwned keeps it), which
		// gives it back once stored unless a reader took it meanwhile
		// (store.Writer.SetSpare).
		data := pf.buffer(int(f.Len))
		for off := 0; off < len(data); {
			if pf.br.Buffered() < len(data)-off {
				_ = pf.s.SetReadDeadline(time.Now().Add(pf.stall))
			}
			k, err := io.ReadFull(pf.br, data[off:min(off+readChunk, len(data))])
			off += k
			if err != nil {
				send(received{err: pf.readErr(noEOF(err))})
				return
			}
		}
		r := received{f: f, data: data}
		if f.Type == framePacket && hold != nil {
			if !release(hold.packet(r, time.Now())) {
				return
			}
			continue
		}
		if !send(r) {
			return
		}
	}
}

// checkSegments hands on what readFrames read, in order, each segment
// checked by w (hash, encoding: store.Writer.CheckOwned) first; it stops
// after an error, which it hands on.
func checkSegments(ctx context.Context, in <-chan received, out chan<- received, w *store.Writer) {
	for r := range in {
		if r.err == nil && r.f.Type == frameSegment {
			seg, err := w.CheckOwned(r.data, r.f.Hash)
			if err != nil {
				r = received{err: fmt.Errorf("%w: segment %d: %w", ErrBadSegment, r.f.Index, err)}
			} else {
				r = received{f: r.f, seg: seg}
			}
		}
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
		if r.err != nil {
			return
		}
	}
}

// distrust skips peer id for Config.DistrustFor, for every key when all,
// else for key: it lied about key (err says how). The log line names the
// peer.
func (m *Mesh) distrust(id peer.ID, key string, all bool, err error) {
	k := key
	if all {
		k = ""
	}
	if m.liars.mark(id, k) {
		lvl := slog.LevelWarn
		if !all {
			lvl = slog.LevelInfo // a stale provider record also does this
		}
		m.log.Log(context.Background(), lvl, "peer content rejected; skipping the peer for a while", "bad_peer", id.String(),
			"stream", key, "for", m.cfg.DistrustFor, "err", err)
	}
}

// readErr names a read error: a deadline is a stall, an EOF a peer that
// went away before the end frame.
func (pf *PeerFill) readErr(err error) error {
	var te interface{ Timeout() bool }
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &te) && te.Timeout():
		return fmt.Errorf("%w: nothing for %v", ErrStalled, pf.stall)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: stream ended without an end frame", ErrProtocol)
	}
	return err
}

// buffer returns a buffer of n bytes, reusing one the store is done with.
// A new segment buffer has room for a little more, so that it fits the
// next segments too (their sizes vary by a few KiB).
func (pf *PeerFill) buffer(n int) []byte {
	select {
	case b := <-pf.free:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	if n <= bufferRound {
		return make([]byte, n) // a packet's
	}
	return make([]byte, n, (n+bufferRound-1)&^(bufferRound-1))
}

// bufferRound: what buffer rounds a new segment buffer's capacity up to.
const bufferRound = 16 << 10

// recycle offers b for reuse.
func (pf *PeerFill) recycle(b []byte) {
	select {
	case pf.free <- b:
	default:
	}
}
