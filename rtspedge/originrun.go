package rtspedge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/store"
)

// PacketWriter receives the packets of an origin session; *store.Writer
// satisfies it.
type PacketWriter interface {
	Append(store.Packet) error
	Last() (tt time.Duration, pn uint64, ok bool)
	// TrackTail is track's last packet and when it was appended, for a
	// live recording (store.Writer.TrackTail).
	TrackTail(track uint8) (store.Packet, time.Time, bool)
}

const (
	// endSlack: a VOD stream whose last packet is this close to the SDP
	// duration has reached its end, whatever way the origin then stops.
	endSlack = 500 * time.Millisecond
	// endIdle: that long without packets after reaching the end is a clean end
	// even without RTCP BYE or a closed connection.
	endIdle = time.Second
	// resumeSlack: derived tt of one packet may differ this much between
	// two PLAYs (the origin's RTP-Info is in whole milliseconds).
	resumeSlack = time.Millisecond
)

// playRun is the state of one Run: what the PLAY answer said and where the
// stream is.
type playRun struct {
	o *OriginSession
	w PacketWriter

	mu       sync.Mutex
	stopped  bool // no more appends: Run is returning
	err      error
	started  time.Time // when the PLAY answer arrived
	rngStart time.Duration
	from     time.Duration // where PLAY asks to start on a fresh writer (a range of PullRanges)
	speed    float64       // delivery speed the origin applied (1 when it said none)
	resume   bool          // VOD: continue from the writer's last packet
	splice   *liveSplice   // live: re-base this session to follow the writer's packets
	cutTT    time.Duration // last packet the writer had before this run (resume)
	cutPN    uint64
	rebases  []resumeBase  // resume: per track, how its packets continue the writer's
	lastTT   time.Duration // highest tt appended (or cutTT)
	nextPN   uint64        // next derived packet number
	lastAt   time.Time     // arrival of the last packet
	appended uint64
	dropped  uint64 // packets that could not be decoded
	byes     map[uint8]bool
	budget   streamBudget
	check    *speedCheck // a granted Speed not yet seen in the media's clock: packets held
	end      chan struct{}
	endOnce  sync.Once
	buf      []byte
}

// Run sends PLAY and appends every packet to w until the stream ends.
//
// When w already has packets, a VOD stream is resumed: PLAY from the
// writer's last packet, dropping what it already has. A live stream is
// spliced instead (see liveSplice): from the first key frame on, the new
// session's tt, packet numbers and RTP timestamps are re-based to continue
// the writer's, the gap counted in wall-clock time since the writer's last
// packet (a *store.Writer knows it, whoever wrote it), else since the last
// packet of the session this one was reopened from (Reopen).
//
// Run returns nil at a clean end (RTCP BYE on every track, or a VOD origin
// stopping once the SDP duration is reached), and an error otherwise: ctx's
// error when ctx ends, one wrapping ErrOriginUnavailable when the origin
// fails or sends no RTP for the request's Timeout, one wrapping
// ErrStreamLimit when the origin sends more than the stream may store or a
// packet larger than MaxPlayerPacket (nothing of it is stored), the writer's
// error when an append fails. Run may be called once.
func (o *OriginSession) Run(ctx context.Context, w PacketWriter) error {
	return o.run(ctx, w, nil)
}

// rangePlay is how a later range of PullRanges plays: from where, and at
// what Speed (the first range's, granted; 1 or less asks for none).
type rangePlay struct {
	from  time.Duration
	speed float64
}

// run is Run, whose PLAY into a writer that holds nothing asks to start
// where rng says at its speed (a range of PullRanges) instead of at 0
// at playSpeed's.
func (o *OriginSession) run(ctx context.Context, w PacketWriter, rng *rangePlay) error {
	o.mu.Lock()
	if o.ran {
		o.mu.Unlock()
		return errors.New("rtspedge: OriginSession.Run called twice")
	}
	o.ran = true
	o.mu.Unlock()
	defer o.Close()
	// A request in flight (PLAY) returns when ctx ends: closing the client
	// ends it.
	stopOnCancel := context.AfterFunc(ctx, o.Close)
	defer stopOnCancel()

	r := o.newRun(w, rng)
	o.mu.Lock()
	o.cur = r
	o.mu.Unlock()
	start, err := r.play()
	if err != nil {
		return o.runErr(ctx, "PLAY", err)
	}
	o.log.Debug("origin play", "from", start, "resume", r.resume, "splice", r.splice != nil)

	waitErr := make(chan error, 1)
	go func() { waitErr <- o.client.Wait() }()
	result, waited := r.watch(ctx, waitErr)
	r.mu.Lock()
	r.stopped = true
	if r.check != nil && result == nil && r.err == nil {
		r.settleSpeed(true) // the stream ended before the check decided
	}
	if r.err != nil {
		result = r.err
	}
	appended, dropped := r.appended, r.dropped
	r.mu.Unlock()
	o.Close()
	if !waited {
		<-waitErr
	}
	o.log.Debug("origin play ended", "appended", appended, "undecodable", dropped, "err", result)
	return result
}

// newRun is the state of a Run into w: a live recording that has packets
// is continued (spliced) from where each track stopped, a VOD one resumed
// after its last packet; a range (rng not nil) of a writer that holds
// nothing plays from its start at its speed.
func (o *OriginSession) newRun(w PacketWriter, rng *rangePlay) *playRun {
	r := &playRun{o: o, w: w, byes: make(map[uint8]bool), end: make(chan struct{})}
	var already int64 // a resumed VOD counts what it holds; a live run counts from its PLAY
	if mw, ok := w.(interface{ Manifest() store.Manifest }); ok && !o.m.Live {
		already = int64(mw.Manifest().Bytes)
	}
	r.budget = newStreamBudget(o.req, o.m, already)
	tt, pn, ok := w.Last()
	speed := o.playSpeed(uint64(already), tt)
	if rng != nil && !ok {
		r.from, speed = rng.from, 0
		if rng.speed > 1 && !o.m.Live {
			speed = rng.speed
		}
	}
	o.mu.Lock()
	o.speed = speed
	o.mu.Unlock()
	switch {
	case ok && o.m.Live:
		// The writer knows where each track stopped, whoever appended it.
		r.splice = newLiveSplice(store.TailOf(w, len(o.tracks)), o.tracks)
		r.lastTT, r.nextPN = tt, pn+1
	case ok:
		r.resume, r.cutTT, r.cutPN, r.lastTT, r.nextPN = true, tt, pn, tt, pn+1
		r.rebases = make([]resumeBase, len(o.tracks))
	}
	return r
}

// play sends PLAY (from the resume point) with the client's packet
// callbacks set. Packets may arrive before Play returns: they wait for the
// PLAY answer, which maps their timestamps to NPT. It returns where it
// asked to start.
func (r *playRun) play() (time.Duration, error) {
	o := r.o
	byMedia := make(map[*description.Media]*originTrack, len(o.tracks))
	for _, t := range o.tracks {
		byMedia[t.media] = t
	}
	ready := make(chan struct{})
	o.client.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		<-ready
		if t := byMedia[medi]; t != nil {
			r.packet(t, pkt)
		}
	})
	o.client.OnPacketRTCPAny(func(medi *description.Media, pkt rtcp.Packet) {
		<-ready
		if t := byMedia[medi]; t != nil {
			switch pkt := pkt.(type) {
			case *rtcp.Goodbye:
				r.bye(t)
			case *rtcp.SenderReport:
				r.senderReport(t, pkt)
			}
		}
	})

	start := r.from
	if r.resume {
		start = r.cutTT
	}
	res, err := o.client.Play(&headers.Range{Value: &headers.RangeNPT{Start: start}})
	r.mu.Lock()
	if err != nil {
		r.stopped = true
	} else {
		r.playAnswer(res, start)
		if r.splice != nil {
			r.splice.start(r.started)
		}
	}
	r.mu.Unlock()
	if n, ok := r.w.(interface{ played(time.Duration) }); ok && err == nil {
		n.played(r.rngStart) // set above by this goroutine
	}
	close(ready)
	return start, err
}

// watch waits for the run to end: ctx, the stream's end (RTCP BYE, or
// idle at the end of a VOD stream), the client's end (waitErr), or an
// origin silent for the request's Timeout. waited says waitErr was read.
func (r *playRun) watch(ctx context.Context, waitErr <-chan error) (result error, waited bool) {
	o := r.o
	tick := time.NewTicker(endIdle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err(), false
		case <-r.end:
			return nil, false
		case err := <-waitErr:
			if !r.atEnd() {
				return o.runErr(ctx, "play", err), true
			}
			return nil, true
		case <-tick.C:
			idle := r.idleFor()
			if r.atEnd() {
				if idle >= endIdle {
					return nil, false
				}
			} else if idle >= o.req.Timeout {
				// RTCP sender reports keep gortsplib's own read timeout
				// from firing on an origin that stopped sending media.
				return o.fail("play", fmt.Errorf("no RTP for %v", idle.Round(time.Millisecond))), false
			}
		}
	}
}

// runErr classifies an error while playing.
func (o *OriginSession) runErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return fmt.Errorf("origin %s: %w", o.display, &OriginStatusError{Method: what, Code: int(bad.Code), Message: bad.Message})
	}
	return o.fail(what, err)
}

// playAnswer reads RTP-Info and Range of the PLAY answer: they map each
// track's RTP timestamps to NPT.
func (r *playRun) playAnswer(res *base.Response, requested time.Duration) {
	r.started = time.Now()
	r.lastAt = r.started
	r.rngStart = requested
	r.speed = 1
	if v, err := strconv.ParseFloat(strings.TrimSpace(first(res.Header["Speed"])), 64); err == nil && v > 0 {
		r.speed = v
	}
	if r.speed > 1 {
		r.check = newSpeedCheck(r.speed)
	}
	r.reclassify(strings.TrimSpace(first(res.Header["Range"])))
	var rng headers.Range
	if err := rng.Unmarshal(res.Header["Range"]); err == nil {
		if npt, ok := rng.Value.(*headers.RangeNPT); ok {
			r.rngStart = npt.Start
		}
	}
	var info headers.RTPInfo
	if err := info.Unmarshal(res.Header["RTP-Info"]); err != nil {
		info = nil
	}
	for i, t := range r.o.tracks {
		t.resetPlay()
		if e := matchRTPInfo(info, i, len(r.o.tracks), t.controlPath(r.o.desc.BaseURL)); e != nil && e.Timestamp != nil {
			t.haveBase, t.baseTS, t.baseTT = true, *e.Timestamp, r.rngStart
		}
	}
}

// reclassify classifies the stream again with the PLAY answer's Range, the
// stronger witness, and updates the session's manifest and the writer's
// (when it can be updated) if that changes it: a live stream whose PLAY
// answer has an end becomes on demand, and an end there is the duration.
// A writer that already holds packets keeps what it is.
func (r *playRun) reclassify(playRange string) {
	o := r.o
	c := classify(o.ssd, playRange)
	o.mu.Lock()
	m := o.m
	o.mu.Unlock()
	if c.live == m.Live && c.duration == m.Duration && c.reason == m.ClassReason {
		return
	}
	if r.resume || r.splice != nil {
		o.log.Debug("PLAY answer classifies the stream otherwise; the recording keeps its own",
			"live", m.Live, "play_range", playRange)
		return
	}
	if c.live != m.Live {
		o.log.Info("PLAY answer reclassifies the stream", "live", c.live, "duration", c.duration, "reason", c.reason)
	}
	o.mu.Lock()
	o.m.Live, o.m.Duration, o.m.ClassReason = c.live, c.duration, c.reason
	o.mu.Unlock()
	if u, ok := r.w.(manifestUpdater); ok {
		err := u.Update(func(m *store.Manifest) { m.Live, m.Duration, m.ClassReason = c.live, c.duration, c.reason })
		if err != nil {
			o.log.Warn("store the PLAY answer's classification", "err", err)
		}
	}
	if o.req.OnClassify != nil && c.live != m.Live {
		o.req.OnClassify(c.live)
	}
}

// manifestUpdater is a PacketWriter whose manifest can change (*store.Writer).
type manifestUpdater interface {
	Update(func(m *store.Manifest)) error
}

// matchRTPInfo finds the RTP-Info entry of track i: by URL path, else by
// position when the origin listed every track.
func matchRTPInfo(info headers.RTPInfo, i, n int, path string) *headers.RTPInfoEntry {
	for _, e := range info {
		if u, err := base.ParseURL(e.URL); err == nil && path != "" && urlPath(u) == path {
			return e
		}
	}
	if len(info) == n {
		return info[i]
	}
	return nil
}

func urlPath(u *base.URL) string {
	if u.RawQuery != "" {
		return u.Path + "?" + u.RawQuery
	}
	return u.Path
}

// packet converts and appends one packet from the origin. It runs on the
// client's reader goroutine, one packet at a time.
func (r *playRun) packet(t *originTrack, pkt *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.err != nil {
		return
	}
	now := time.Now()
	p, ok := t.convert(pkt, now, r)
	if !ok {
		return
	}
	r.lastAt = now
	originPN := p.Flags&store.FlagMetaInfo != 0 && t.hasPN()
	if r.splice != nil {
		if !r.splice.rebase(&p, originPN, now) {
			return
		}
	} else if r.resume {
		// Drop what the writer already has: by the origin's packet numbers,
		// else by transmit time, with a margin for the jitter of deriving tt
		// from another PLAY's RTP-Info (the rest of the cut frame, and a
		// packet within the margin after it, are lost rather than stored
		// twice).
		if originPN && p.PN <= r.cutPN || !originPN && p.TT <= r.cutTT+resumeSlack {
			r.matchResumed(t, &p, originPN)
			return
		}
		r.rebaseResumed(t, &p)
	}
	if !originPN {
		p.PN = r.nextPN
	}
	if err := r.budget.admit(len(p.RTP), r.started, now); err != nil {
		r.err = fmt.Errorf("origin %s: %w", r.o.display, err)
		r.o.log.Warn("origin stream over its limits; the fill ends here, partial", "err", err)
		r.finish()
		return
	}
	r.lastTT = max(r.lastTT, p.TT)
	r.nextPN = max(r.nextPN, p.PN+1)
	if r.check != nil {
		r.check.hold(p, pkt.Timestamp, t.clock, now)
		r.settleSpeed(false)
		return
	}
	if err := r.w.Append(p); err != nil {
		r.err = fmt.Errorf("store packet: %w", err)
		r.finish()
		return
	}
	r.appended++
}

// resumeBase re-bases one track of a resumed VOD session to continue the
// writer's packets of that track: an origin that starts every session at
// random sequence numbers and timestamps (RFC 3550 asks for it; cameras
// and gst-rtsp-server do) would otherwise leave a jump in the stored
// timestamps where the session resumed, which players get as they are
// (the replay offsets them by one constant).
type resumeBase struct {
	loaded  bool         // tail read from the writer
	tail    store.Packet // the writer's last packet of the track (ok: loaded and found)
	ok      bool
	matched bool // the offsets come from this session's copy of the tail
	known   bool // the offsets are fixed: packets are rewritten
	keep    bool // nothing to continue: stored as sent
	seqOff  uint16
	tsOff   uint32
	ssrc    uint32
}

// load reads the writer's last packet of track t once.
func (b *resumeBase) load(r *playRun, t *originTrack) {
	if b.loaded {
		return
	}
	b.loaded = true
	b.tail, _, b.ok = r.w.TrackTail(t.index)
	b.ok = b.ok && len(b.tail.RTP) >= 12
}

// matchResumed looks in p, a packet of track t the resumed session sent
// again (the writer has it: the origin seeks back to a key frame), for the
// writer's last packet of t, by the origin's packet number (originPN) or
// else by tt: where they are the same packet, the offsets between the two
// sessions' numbers are exact. Of packets alike in tt (one video frame's)
// the last counts. r.mu must be held.
func (r *playRun) matchResumed(t *originTrack, p *store.Packet, originPN bool) {
	b := &r.rebases[t.index]
	b.load(r, t)
	if b.known || !b.ok || len(p.RTP) < 12 {
		return
	}
	d := p.TT - b.tail.TT
	if originPN && p.PN != b.tail.PN || !originPN && (d < -resumeSlack || d > resumeSlack) {
		return
	}
	h, th := p.RTP[:12], b.tail.RTP[:12]
	b.matched = true
	b.seqOff = binary.BigEndian.Uint16(th[2:4]) - binary.BigEndian.Uint16(h[2:4])
	b.tsOff = binary.BigEndian.Uint32(th[4:8]) - binary.BigEndian.Uint32(h[4:8])
	b.ssrc = binary.BigEndian.Uint32(th[8:12])
}

// rebaseResumed rewrites the RTP header of p, a packet of track t the
// resumed session sent after the writer's last, to continue the writer's
// packets of t. Without a match (matchResumed) the first packet kept
// sets the offsets: a timestamp within 10 ms of the one its tt predicts
// from the tail, and a sequence number within 1000 after the tail's, are
// taken as the same numbering (the built-in origin's sessions all carry
// the same); otherwise they are re-based to the prediction, which is as
// exact as the tt. r.mu must be held.
func (r *playRun) rebaseResumed(t *originTrack, p *store.Packet) {
	b := &r.rebases[t.index]
	if len(p.RTP) < 12 {
		return
	}
	h := p.RTP[:12]
	if !b.known {
		b.known = true
		b.load(r, t)
		switch {
		case b.matched:
		case !b.ok || t.clock == 0:
			b.keep = true
		default:
			th := b.tail.RTP[:12]
			seq, ts := binary.BigEndian.Uint16(h[2:4]), binary.BigEndian.Uint32(h[4:8])
			tailSeq, tailTS := binary.BigEndian.Uint16(th[2:4]), binary.BigEndian.Uint32(th[4:8])
			want := tailTS + uint32(store.DurationToTicks(p.TT-b.tail.TT, t.clock))
			if d := int64(int32(ts - want)); d < -int64(t.clock/100) || d > int64(t.clock/100) {
				b.tsOff = want - ts
			}
			if seq-(tailSeq+1) > 1000 {
				b.seqOff = tailSeq + 1 - seq
			}
			b.ssrc = binary.BigEndian.Uint32(th[8:12])
		}
	}
	if b.keep {
		return
	}
	binary.BigEndian.PutUint16(h[2:4], binary.BigEndian.Uint16(h[2:4])+b.seqOff)
	binary.BigEndian.PutUint32(h[4:8], binary.BigEndian.Uint32(h[4:8])+b.tsOff)
	binary.BigEndian.PutUint32(h[8:12], b.ssrc)
}

// settleSpeed ends the speed check (speedCheck) once it can decide (end:
// it must, the stream ended): the held packets are stored, or, when the
// origin slowed its RTP clock by the speed it granted, none are and the
// run ends with ErrSpeedScalesClock. r.mu must be held.
func (r *playRun) settleSpeed(end bool) {
	c := r.check
	decided, honoured := c.verdict(r.lastAt, end)
	if !decided {
		return
	}
	r.check = nil
	if ratio := c.ratio(r.lastAt); !honoured {
		r.o.mu.Lock()
		r.o.speedRefused = true
		r.o.mu.Unlock()
		r.err = fmt.Errorf("origin %s: %w: Speed %.3g granted, media arrived at %.2f times real time", r.o.display, ErrSpeedScalesClock, c.speed, ratio)
		r.finish()
		return
	}
	for _, p := range c.held {
		if err := r.w.Append(p); err != nil {
			r.err = fmt.Errorf("store packet: %w", err)
			r.finish()
			return
		}
		r.appended++
	}
}

// clockSetter is a PacketWriter that keeps each track's RTP↔NTP mapping
// (*store.Writer).
type clockSetter interface {
	SetClock(track uint8, c store.Clock) error
}

// senderReport keeps the origin's RTP↔NTP mapping of a live track t from
// its sender report, in the timestamps stored (a spliced session's are re-based), so
// the edge's own sender reports to players carry the origin's capture time.
func (r *playRun) senderReport(t *originTrack, sr *rtcp.SenderReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs, ok := r.w.(clockSetter)
	r.o.mu.Lock()
	live := r.o.m.Live
	r.o.mu.Unlock()
	if r.stopped || !ok || !live || sr.NTPTime == 0 {
		return // VOD: the edge reports its own session timeline
	}
	ts := sr.RTPTime
	if r.splice != nil {
		off, ok := r.splice.Offset(t.index)
		if !ok {
			return // no packet kept yet: the next report will do
		}
		ts += off
	}
	if err := cs.SetClock(t.index, store.Clock{RTP: ts, NTP: timeOfNTP(sr.NTPTime)}); err != nil {
		r.o.log.Debug("keep the origin's clock", "track", t.index, "err", err)
	}
}

// bye notes an RTCP BYE; BYE on every track ends the stream.
func (r *playRun) bye(t *originTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byes[t.index] = true
	if len(r.byes) == len(r.o.tracks) {
		r.finish()
	}
}

// lostPackets ends the run with a DroppedError when the origin dropped n
// packets of an on-demand stream it sends faster than real time. Nothing
// after the gap is stored, packets a speed check holds included (they
// were not checked), so the writer's last packet is the one before the
// gap, where a resumed Run goes on. At real time the run stores on past
// the gap, as before: the loss is then the origin's own (a recording
// with holes) or its link's, and asking again would not mend it.
func (r *playRun) lostPackets(n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.err != nil || r.speed <= 1 {
		return
	}
	d := &DroppedError{Origin: r.o.display, Lost: n, After: r.lastTT, Speed: max(r.speed, 1)}
	r.o.noteDropped(d)
	r.err = d
	r.finish()
}

func (r *playRun) finish() { r.endOnce.Do(func() { close(r.end) }) }

// delivery is the speed at which the origin delivers Run's stream, once
// its PLAY was answered and a granted Speed was checked (1: real time);
// ok is false before. start is where the PLAY answer's Range says the
// stream starts (else where it asked).
func (o *OriginSession) delivery() (speed float64, start time.Duration, ok bool) {
	o.mu.Lock()
	r := o.cur
	o.mu.Unlock()
	if r == nil {
		return 0, 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started.IsZero() || r.check != nil {
		return 0, 0, false
	}
	return r.speed, r.rngStart, true
}

// atEnd: a VOD stream whose last packet reached the SDP duration.
func (r *playRun) atEnd() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.o.mu.Lock()
	m := r.o.m
	r.o.mu.Unlock()
	return !m.Live && m.Duration > 0 && r.lastTT+endSlack >= m.Duration && (r.appended > 0 || r.resume)
}

func (r *playRun) idleFor() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Since(r.lastAt)
}
