package rtspedge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/store"
)

// DefaultRangeBuffer is RangePull.MaxBuffer when it is zero.
const DefaultRangeBuffer = 64 << 20

// How ranges are cut and joined (see PullRanges).
const (
	// rangeAgree: two sessions agree from a packet on when that many
	// packets of its track are alike in both (payload, marker, and RTP
	// timestamp relative to the first).
	rangeAgree = 16
	// rangeSkip: a range may begin with up to that many packets of a track
	// that a single pull does not have there (gst-rtsp-server repeats
	// SPS/PPS after a seek, and clips the first audio frame).
	rangeSkip = 8
	// rangeSlack: a range's first key frame is expected within this of
	// where its PLAY answer says it starts (an origin that answers the
	// position asked for, not its key frame, seeks back at most a GOP).
	rangeSlack = 10 * time.Second
	// rangeSlackNamed is rangeSlack for an origin whose PLAY answer
	// names another start than the one asked for: the key frame it seeks
	// to (gst-rtsp-server, the built-in origin). The range before holds
	// back only that much of its packets until the cut is found, so a
	// player that joins a prefetch seldom waits for it.
	rangeSlackNamed = time.Second
	// rangeMin is the shortest range a split makes.
	rangeMin = 2 * time.Second
	// rangeAssumedBitrate sizes ranges for MaxBuffer when neither the SDP
	// nor what was stored says the stream's bitrate.
	rangeAssumedBitrate = 8_000_000
	// rangeTick: how often PullRanges looks whether to split.
	rangeTick = 200 * time.Millisecond
)

// RangePull says how PullRanges splits a stream into ranges.
type RangePull struct {
	// Parallelism is the most sessions that pull the stream at once, the
	// first included; below 2, PullRanges is Run.
	Parallelism int
	// Open opens another session of the stream, with the release of what
	// it holds (a max_sessions slot); a nil session means none may open
	// now. Its PLAY asks for the Speed the first session was granted. A
	// split calls it from several goroutines at once.
	Open func(ctx context.Context) (*OriginSession, func(), error)
	// Unwatched says whether nobody plays the recording at real time now:
	// only then is the rest of the stream split (a player is served from
	// the first range as it arrives).
	Unwatched func() bool
	// MaxBuffer bounds the bytes held in memory for ranges ahead of the
	// one being stored; zero is DefaultRangeBuffer.
	MaxBuffer int64
	// Logger receives the splits and joins; nil discards.
	Logger *slog.Logger
}

// PullRanges plays the on-demand stream of o into w as Run does, and while
// cfg.Unwatched says nobody plays it, pulls the rest as several ranges at
// once (DESIGN.md §7, Speed): the session playing goes on as the first
// range, and up to Parallelism-1 more sessions PLAY with Range npt=a- at
// equal steps after it, each asking for the Speed the origin granted the
// first (once its speed check passed; none when it granted none), so the
// stream arrives at up to Parallelism times that speed; with the origin's
// RateLimit, only as many ranges as keep the sum within it. Each origin
// seeks to the key frame at or before a; the range before is cut where
// the next one's packets begin: the first packet of each track from which
// rangeAgree packets are alike in both sessions (payload, marker, timestamp steps), found within
// rangeSlack of where the next range's PLAY answer says it starts. The
// next range's packets before that are dropped (gst-rtsp-server repeats
// SPS/PPS after a seek, and clips the first audio frame), and its
// sequence numbers, timestamps and SSRC are rewritten to continue the
// range before's, its tt (unless the origin sent them) derived from the
// timestamps: w gets, per track, the packets a single pull stores, in
// order and alike (packet numbers counted as Run counts them).
//
// The first range is stored as it arrives, except its last rangeSlack
// (1 s when the origin's answer names the key frame it starts at) before
// the next range's start, which waits for the cut; later ranges are
// held in memory until the ones before are stored. MaxBuffer bounds what
// they hold: the ranges are made shorter, the last of them running on to
// the end of the stream, and once it is the one stored the rest is split
// again. A session whose range is joined closes at once (its release
// runs).
//
// When two ranges cannot be joined, or a later range's session fails,
// PullRanges logs why, closes them, and goes on with one session from
// what w holds (Reopen, resuming), as Run would have; at half the speed
// when a range's origin dropped packets (ErrOriginDropped), and o's
// Reopen then asks for no more than that session's.
func PullRanges(ctx context.Context, o *OriginSession, w PacketWriter, cfg RangePull) error {
	if cfg.Parallelism < 2 || o.Manifest().Live || o.Manifest().Duration <= 0 {
		return o.Run(ctx, w)
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = DefaultRangeBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	j := newRangeJoin(o, w, cfg)
	err := j.pull(ctx)
	if !errors.Is(err, errRangeFallback) {
		return err
	}
	next, err := o.Reopen(ctx)
	if err != nil {
		return err
	}
	err = next.Run(ctx, w)
	o.noteDropped(err) // the caller reopens o
	return err
}

// errRangeFallback: the ranges were given up (two could not be joined, or
// a later range's session failed); one session goes on.
var errRangeFallback = errors.New("range pull given up")

// rangeJoin is one PullRanges: the ranges not yet stored, in media order,
// the first of them (the head) being stored.
type rangeJoin struct {
	o   *OriginSession // the first session
	w   PacketWriter
	cfg RangePull
	log *slog.Logger
	n   int // tracks

	mu       sync.Mutex
	ranges   []*rangeRun
	nextPN   uint64        // the next derived packet number
	lastTT   time.Duration // tt of the last packet stored
	err      error         // why the pull ended early
	flushing bool          // given up: the head is stored up to its cut, or all of it
	done     bool          // the last range was stored to the end of the stream
	over     chan struct{} // closed when err or done is set
	overOne  sync.Once
	holdOff  time.Time // no split before (a split found no session to open)
}

func newRangeJoin(o *OriginSession, w PacketWriter, cfg RangePull) *rangeJoin {
	j := &rangeJoin{o: o, w: w, cfg: cfg, log: cfg.Logger.With("origin", o.display), n: len(o.tracks), over: make(chan struct{})}
	if _, pn, ok := w.Last(); ok {
		j.nextPN = pn + 1
	}
	j.lastTT, _, _ = w.Last()
	return j
}

// rangeRun is one range: its session and the packets not yet stored.
type rangeRun struct {
	o       *OriginSession
	release func()
	cancel  context.CancelFunc
	first   bool          // the session PullRanges was given
	from    time.Duration // where its PLAY asked to start
	speed   float64       // the Speed its PLAY asked for (a later range: the first's, granted)
	after   time.Duration // the head's last stored tt when it was split off
	start   time.Duration // where its PLAY answer said it starts (from until its first packet)
	begun   bool          // a packet arrived
	cut     bool          // every track is cut at the next range: its session is closed
	ended   bool          // its Run returned nil: the stream's end
	arrival uint64        // packets received, all tracks
	tracks  []rangeTrack
}

// rangeTrack is one track of a range. Indices are logical: pkts[i-base].
type rangeTrack struct {
	pkts    []rangePacket
	base    int
	stored  int // the next packet to store (the head) or to consider
	scan    int // packets before it cannot be where the next range begins
	cutAt   int // where the next range begins; -1 until found
	skip    int // packets before the range's beginning, dropped
	rb      rebase
	firstTS uint32
}

func (t *rangeTrack) at(i int) *rangePacket { return &t.pkts[i-t.base] }
func (t *rangeTrack) end() int              { return t.base + len(t.pkts) }

// rangePacket is a packet of a range with its RTP header read.
type rangePacket struct {
	p       store.Packet // RTP owned
	arrival uint64
	hdr     rtp.Header
	payload []byte // aliases p.RTP
	metaTT  bool   // tt is the origin's
	metaPN  bool   // pn is the origin's
}

// rebase rewrites a range's packets of one track to continue the range
// before: sequence numbers, timestamps, SSRC, and tt derived from the
// timestamp relative to the packet where the range begins.
type rebase struct {
	known    bool
	identity bool // the first range: stored as it came
	seqOff   uint16
	tsOff    uint32
	ssrc     uint32
	tsAt     uint32        // the range's own timestamp at its beginning
	ttAt     time.Duration // the tt of that packet as stored
	clock    uint32
}

func (b *rebase) tt(p *rangePacket) time.Duration {
	if b.identity || p.metaTT || b.clock == 0 {
		return p.p.TT
	}
	return max(b.ttAt+store.TicksToDuration(int64(int32(p.hdr.Timestamp-b.tsAt)), b.clock), 0)
}

// pull runs the ranges until the stream is stored, it fails, or the
// ranges are given up (errRangeFallback).
func (j *rangeJoin) pull(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	head := j.newRange(j.o, func() {}, 0, true)
	for i := range head.tracks {
		head.tracks[i].rb = rebase{known: true, identity: true}
	}
	j.ranges = []*rangeRun{head}
	j.start(ctx, &wg, head)
	tick := time.NewTicker(rangeTick)
	defer tick.Stop()
	for {
		select {
		case <-j.over:
			j.mu.Lock()
			err := j.err
			j.mu.Unlock()
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			j.maybeSplit(ctx, &wg)
		}
	}
}

// newRange is a range of session o from from, not yet started.
func (j *rangeJoin) newRange(o *OriginSession, release func(), from time.Duration, first bool) *rangeRun {
	r := &rangeRun{o: o, release: release, first: first, from: from, start: from, tracks: make([]rangeTrack, j.n)}
	for i := range r.tracks {
		r.tracks[i].cutAt = -1
		r.tracks[i].rb.clock = o.tracks[i].clock
	}
	return r
}

// start runs r's session on a goroutine wg waits for.
func (j *rangeJoin) start(ctx context.Context, wg *sync.WaitGroup, r *rangeRun) {
	rctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	var sink PacketWriter = rangeSink{j: j, r: r}
	if r.first {
		sink = firstSink{rangeSink{j: j, r: r}}
	}
	var rng *rangePlay
	if !r.first {
		rng = &rangePlay{from: r.from, speed: r.speed}
	}
	wg.Go(func() {
		defer cancel()
		err := r.o.run(rctx, sink, rng)
		r.release()
		j.ended(ctx, r, err)
	})
}

// ended notes that r's session returned err.
func (j *rangeJoin) ended(ctx context.Context, r *rangeRun, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case r.cut || ctx.Err() != nil || j.err != nil || j.done:
		// Closed on purpose.
	case err != nil && r.first && len(j.ranges) == 1:
		j.failLocked(err) // as Run would: no range was split off
	case err != nil:
		j.o.noteDropped(err) // the session going on plays slower
		j.log.Warn("a range's session failed; going on with one session", "from", r.from, "err", err)
		j.failLocked(errRangeFallback)
	default:
		r.ended = true
		j.advanceLocked()
	}
}

// failLocked ends the pull with err and closes every range's session.
func (j *rangeJoin) failLocked(err error) {
	if j.err != nil || j.done {
		return
	}
	j.err = err
	j.overOne.Do(func() { close(j.over) })
	for _, r := range j.ranges {
		r.cancel()
	}
	if errors.Is(err, errRangeFallback) {
		// What the head holds is what one session would have stored:
		// keep it, and the session after goes on from there.
		j.flushing = true
		j.storeHeadLocked()
	}
}

// maybeSplit splits the rest of the stream into ranges when the head is
// the only range, its delivery speed is known (a granted Speed checked),
// and nobody watches. Each later range asks for the head's speed.
func (j *rangeJoin) maybeSplit(ctx context.Context, wg *sync.WaitGroup) {
	j.mu.Lock()
	if len(j.ranges) != 1 || j.err != nil || j.done || time.Now().Before(j.holdOff) {
		j.mu.Unlock()
		return
	}
	head := j.ranges[0]
	j.mu.Unlock()
	speed, _, ok := head.o.delivery()
	if !ok || (j.cfg.Unwatched != nil && !j.cfg.Unwatched()) {
		return
	}
	speed = max(speed, 1)
	j.mu.Lock()
	n, _ := j.plan(j.cfg.Parallelism, speed)
	j.mu.Unlock()
	if n < 2 {
		return
	}
	more := j.open(ctx, n-1)
	j.mu.Lock()
	defer j.mu.Unlock()
	n, step := j.plan(len(more)+1, speed)
	if n < 2 || j.err != nil || j.done {
		for _, m := range more {
			m.close()
		}
		j.holdOff = time.Now().Add(5 * time.Second)
		return
	}
	for _, m := range more[n-1:] {
		m.close()
	}
	for i := range head.tracks {
		t := &head.tracks[i]
		t.scan = t.stored // what is stored cannot be where the next range begins
	}
	from := j.lastTT
	j.log.Info("range pull: split", "from", from, "ranges", n, "step", step, "speed", speed, "end", j.o.Manifest().Duration)
	for k := 1; k < n; k++ {
		r := j.newRange(more[k-1].o, more[k-1].release, from+time.Duration(k)*step, false)
		r.after, r.speed = from, speed
		j.ranges = append(j.ranges, r)
		j.start(ctx, wg, r)
	}
}

// opened is a session RangePull.Open opened, with its release.
type opened struct {
	o       *OriginSession
	release func()
}

func (m opened) close() {
	m.o.Close()
	m.release()
}

// open opens up to n more sessions of the stream at once (each open is a
// DESCRIBE and a SETUP per track: one after another they would cost the
// head n times those round trips of the stream), and returns those
// RangePull.Open gave with the stream's tracks.
func (j *rangeJoin) open(ctx context.Context, n int) []opened {
	got := make([]opened, n)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			o, release, err := j.cfg.Open(ctx)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					j.log.Info("range pull: a session did not open", "err", err)
				}
			case o == nil:
			case len(o.tracks) != j.n:
				opened{o, release}.close()
			default:
				got[i] = opened{o, release}
			}
		})
	}
	wg.Wait()
	var more []opened
	for _, m := range got {
		if m.o != nil {
			more = append(more, m)
		}
	}
	return more
}

// plan is how many ranges the rest of the stream is split into, at most
// n, and the step between their starts: equal parts of the rest, none
// shorter than rangeMin, and short enough that the ranges after the head
// hold at most MaxBuffer. With the origin's RateLimit, n ranges each
// delivered at speed stay within it: none is split off until the
// stream's bitrate is known. j.mu is held.
func (j *rangeJoin) plan(n int, speed float64) (int, time.Duration) {
	rest := j.o.Manifest().Duration - j.lastTT
	n = min(n, int(rest/rangeMin))
	if n < 2 {
		return n, 0
	}
	bitrate := sdpBitrate(j.o.ssd)
	if mw, ok := j.w.(interface{ Manifest() store.Manifest }); ok && bitrate <= 0 && j.lastTT >= time.Second {
		bitrate = float64(mw.Manifest().Bytes) * 8 / j.lastTT.Seconds()
	}
	if limit := j.o.req.RateLimit; limit > 0 {
		if bitrate <= 0 {
			return 0, 0
		}
		// 1e-6: a speed playSpeed lowered to the cap makes 1, not 0.99….
		n = min(n, int(float64(limit)/(bitrate*speed)+1e-6))
		if n < 2 {
			return n, 0
		}
	}
	if bitrate <= 0 {
		bitrate = rangeAssumedBitrate
	}
	step := rest / time.Duration(n)
	limit := time.Duration(float64(j.cfg.MaxBuffer) * 8 / (float64(n-1) * bitrate) * float64(time.Second))
	return n, max(min(step, limit), rangeMin)
}

// add takes a packet of r from its session.
func (j *rangeJoin) add(r *rangeRun, p store.Packet) error {
	rp := rangePacket{p: p}
	n, err := rp.hdr.Unmarshal(p.RTP)
	if err != nil {
		return nil // Run stores only packets it could marshal
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil || j.done {
		return j.err
	}
	if r.cut || int(p.Track) >= j.n {
		return nil
	}
	r.begun = true
	ot := r.o.tracks[p.Track]
	rp.metaTT = p.Flags&store.FlagMetaInfo != 0 && ot.fields.Has(metainfo.NameTT)
	rp.metaPN = p.Flags&store.FlagMetaInfo != 0 && ot.hasPN()
	rp.arrival = r.arrival
	r.arrival++
	t := &r.tracks[p.Track]
	if t.end() == 0 {
		t.firstTS = rp.hdr.Timestamp
	}
	if t.cutAt >= 0 {
		return nil // the next range has it
	}
	if len(j.ranges) == 1 && r.drained() {
		// No range follows and none of r waits: stored at once, as Run
		// would (p.RTP is Run's buffer until Append returns).
		t.base++
		t.stored, t.scan = t.end(), t.end()
		if err := j.storeLocked(&t.rb, &rp); err != nil {
			j.failLocked(err)
		}
		return j.err
	}
	rp.p.RTP = append([]byte(nil), p.RTP...)
	rp.payload = rp.p.RTP[n:]
	t.pkts = append(t.pkts, rp)
	j.advanceLocked()
	return j.err
}

// drained says whether every packet r received is stored (or dropped).
func (r *rangeRun) drained() bool {
	for i := range r.tracks {
		if t := &r.tracks[i]; t.stored < t.end() {
			return false
		}
	}
	return true
}

// advanceLocked finds where ranges begin, closes the sessions of ranges
// cut, and stores what may be stored. j.mu is held.
func (j *rangeJoin) advanceLocked() {
	for k := 0; k+1 < len(j.ranges) && j.err == nil; k++ {
		a, b := j.ranges[k], j.ranges[k+1]
		if a.cut {
			continue
		}
		all := true
		for t := range a.tracks {
			if a.tracks[t].cutAt < 0 {
				j.findCut(a, b, t)
			}
			all = all && a.tracks[t].cutAt >= 0
		}
		if j.err != nil {
			return
		}
		if all {
			a.cut = true
			a.cancel()
			continue
		}
		if a.ended {
			j.log.Warn("range pull: a range ended before the next one's beginning was found in it; going on with one session", "from", a.from, "next", b.from)
			j.failLocked(errRangeFallback)
			return
		}
	}
	for j.err == nil && !j.done && j.storeHeadLocked() {
	}
}

// est is where packet i of r's track t is in the stream, as well as r
// can tell before its rebase is known.
func (r *rangeRun) est(t, i int) time.Duration {
	tr := &r.tracks[t]
	p := tr.at(i)
	if tr.rb.known || p.metaTT || tr.rb.clock == 0 {
		return tr.rb.tt(p)
	}
	return r.start + store.TicksToDuration(int64(int32(p.hdr.Timestamp-tr.firstTS)), tr.rb.clock)
}

// findCut looks for where b begins in a's track t: the first packet (at
// or after a's scan) from which rangeAgree packets are alike to b's from
// one of its first rangeSkip packets on.
func (j *rangeJoin) findCut(a, b *rangeRun, t int) {
	at, bt := &a.tracks[t], &b.tracks[t]
	if !b.begun {
		return
	}
	slack := rangeSlack
	if b.start != b.from {
		slack = rangeSlackNamed // the origin named its key frame
	}
	lower := max(min(b.start, b.from)-slack, b.after)
	bound := max(b.start, b.from) + slack
	need := rangeAgree
	if b.ended || b.cut {
		need = min(need, bt.end()-bt.base)
	}
	if need == 0 {
		if b.ended {
			j.log.Warn("range pull: a range has no packet of a track", "track", t, "from", b.from)
			j.failLocked(errRangeFallback)
		}
		return
	}
	for at.scan < at.end() {
		i := at.scan
		est := a.est(t, i)
		if est < lower {
			at.scan++
			continue
		}
		if i+need > at.end() && !a.ended {
			return // more of a first
		}
		decided := true
		for s := range rangeSkip {
			if s+need > bt.end() {
				decided = decided && (b.ended || b.cut)
				break
			}
			if i+need <= at.end() && agree(at, i, bt, s, need) {
				at.cutAt, bt.skip, bt.stored = i, s, s
				// The frame type and key start of the packets both have
				// are a's: b's frame tracker began within what it skips.
				for m := range need {
					pa, pb := at.at(i+m), bt.at(s+m)
					pb.p.FT = pa.p.FT
					pb.p.Flags = pb.p.Flags&^store.FlagKeyStart | pa.p.Flags&store.FlagKeyStart
				}
				return
			}
		}
		if !decided {
			return // more of b first
		}
		if est > bound {
			j.log.Warn("range pull: the next range's packets are not in the range before; going on with one session",
				"track", t, "next", b.from, "next_start", b.start, "searched_to", est)
			j.failLocked(errRangeFallback)
			return
		}
		at.scan++
	}
}

// agree says whether n packets of a's track from i are b's from s.
func agree(a *rangeTrack, i int, b *rangeTrack, s int, n int) bool {
	a0, b0 := a.at(i), b.at(s)
	for m := range n {
		pa, pb := a.at(i+m), b.at(s+m)
		if pa.hdr.Marker != pb.hdr.Marker || pa.hdr.PayloadType != pb.hdr.PayloadType ||
			pa.hdr.Timestamp-a0.hdr.Timestamp != pb.hdr.Timestamp-b0.hdr.Timestamp || string(pa.payload) != string(pb.payload) {
			return false
		}
	}
	return true
}

// storeHeadLocked stores what it may of the head, in the order its
// packets arrived, and makes the next range the head once the head is
// stored up to where it begins. It says whether to go on.
func (j *rangeJoin) storeHeadLocked() bool {
	head := j.ranges[0]
	next := len(j.ranges) > 1
	for {
		best := -1
		for t := range head.tracks {
			tr := &head.tracks[t]
			if tr.stored >= tr.end() || (tr.cutAt >= 0 && tr.stored >= tr.cutAt) {
				continue
			}
			if best < 0 || tr.at(tr.stored).arrival < head.tracks[best].at(head.tracks[best].stored).arrival {
				best = t
			}
		}
		if best < 0 {
			break
		}
		tr := &head.tracks[best]
		if next && tr.cutAt < 0 && tr.stored >= tr.scan && !j.flushing {
			break // it may be where the next range begins
		}
		if err := j.storeLocked(&tr.rb, tr.at(tr.stored)); err != nil {
			if !j.flushing {
				j.failLocked(err)
			}
			return false
		}
		tr.stored++
		if !next {
			tr.scan = tr.stored // stored: not where a later split's range begins
		}
		tr.compact()
	}
	if j.flushing {
		return false
	}
	if !next {
		if head.ended && j.headStoredLocked() {
			j.done = true
			j.overOne.Do(func() { close(j.over) })
		}
		return false
	}
	if !head.cut {
		return false
	}
	for t := range head.tracks {
		if tr := &head.tracks[t]; tr.stored < tr.cutAt {
			return false
		}
	}
	// The head is stored up to the next range's beginning: rebase the
	// next range on the packet where it begins.
	b := j.ranges[1]
	for t := range head.tracks {
		at, bt := &head.tracks[t], &b.tracks[t]
		pa, pb := at.at(at.cutAt), bt.at(bt.skip)
		seq, ts, ssrc := at.rb.rewrite(pa)
		bt.rb = rebase{known: true, seqOff: seq - pb.hdr.SequenceNumber, tsOff: ts - pb.hdr.Timestamp, ssrc: ssrc,
			tsAt: pb.hdr.Timestamp, ttAt: at.rb.tt(pa), clock: bt.rb.clock}
	}
	j.ranges = j.ranges[1:]
	j.log.Debug("range pull: range joined", "from", b.from, "start", b.start, "left", len(j.ranges))
	return true
}

func (j *rangeJoin) headStoredLocked() bool {
	for t := range j.ranges[0].tracks {
		if tr := &j.ranges[0].tracks[t]; tr.stored < tr.end() {
			return false
		}
	}
	return true
}

// rewrite is the sequence number, timestamp and SSRC p is stored with.
func (b *rebase) rewrite(p *rangePacket) (uint16, uint32, uint32) {
	if b.identity {
		return p.hdr.SequenceNumber, p.hdr.Timestamp, p.hdr.SSRC
	}
	return p.hdr.SequenceNumber + b.seqOff, p.hdr.Timestamp + b.tsOff, b.ssrc
}

// storeLocked appends rp to the writer, rebased by rb, and frees its RTP.
func (j *rangeJoin) storeLocked(rb *rebase, rp *rangePacket) error {
	p := rp.p
	seq, ts, ssrc := rb.rewrite(rp)
	binary.BigEndian.PutUint16(p.RTP[2:4], seq)
	binary.BigEndian.PutUint32(p.RTP[4:8], ts)
	binary.BigEndian.PutUint32(p.RTP[8:12], ssrc)
	p.TT = rb.tt(rp)
	if !rp.metaPN {
		p.PN = j.nextPN
	}
	j.nextPN = max(j.nextPN, p.PN+1)
	if err := j.w.Append(p); err != nil {
		return fmt.Errorf("store packet: %w", err)
	}
	j.lastTT = max(j.lastTT, p.TT)
	rp.p.RTP, rp.payload = nil, nil
	return nil
}

// compact drops the stored packets from memory once there are many.
func (t *rangeTrack) compact() {
	if n := t.stored - t.base; n >= 1024 && n >= len(t.pkts)/2 {
		keep := min(n, t.scan-t.base, len(t.pkts)) // packets from scan on are compared
		if t.cutAt >= 0 {
			keep = min(keep, t.cutAt-t.base)
		}
		if keep <= 0 {
			return
		}
		t.pkts = append(t.pkts[:0:0], t.pkts[keep:]...)
		t.base += keep
	}
}

// rangeSink is the PacketWriter a range's session runs into.
type rangeSink struct {
	j *rangeJoin
	r *rangeRun
}

func (s rangeSink) Append(p store.Packet) error { return s.j.add(s.r, p) }

// played notes where the PLAY answer says the range starts, before its
// first packet is appended.
func (s rangeSink) played(start time.Duration) {
	s.j.mu.Lock()
	defer s.j.mu.Unlock()
	if !s.r.first {
		s.r.start = start
	}
}

// Last: a later range starts afresh at its range.
func (s rangeSink) Last() (time.Duration, uint64, bool) { return 0, 0, false }

func (s rangeSink) TrackTail(uint8) (store.Packet, time.Time, bool) {
	return store.Packet{}, time.Time{}, false
}

// firstSink is the first session's: it resumes the writer's recording as
// Run would, and updates its manifest.
type firstSink struct{ rangeSink }

func (s firstSink) Last() (time.Duration, uint64, bool) { return s.j.w.Last() }

func (s firstSink) TrackTail(track uint8) (store.Packet, time.Time, bool) {
	return s.j.w.TrackTail(track)
}

func (s firstSink) Manifest() store.Manifest {
	if mw, ok := s.j.w.(interface{ Manifest() store.Manifest }); ok {
		return mw.Manifest()
	}
	return store.Manifest{}
}

func (s firstSink) Update(fn func(m *store.Manifest)) error {
	if u, ok := s.j.w.(manifestUpdater); ok {
		return u.Update(fn)
	}
	return nil
}
