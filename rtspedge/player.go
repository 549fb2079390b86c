package rtspedge

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtcp"

	"github.com/rtspmesh/rtspmesh/rtspedge/queuewait"
	"github.com/rtspmesh/rtspmesh/store"
)

const (
	// seekGap separates the session timeline before and after a seek, so
	// timestamps keep growing across it.
	seekGap = 100 * time.Millisecond
	// resumeTolerance: a live PLAY whose Range is this close to where the
	// session paused resumes instead of seeking back to a key frame (a VOD
	// PLAY with a Range always seeks: positionVOD).
	resumeTolerance = 50 * time.Millisecond
	// Pre-reading at PLAY (for RTP-Info) stops after this much media or
	// this many packets.
	prereadSpan    = time.Second
	prereadPackets = 256
)

// playTrack is the session's view of one media: its own sequence numbers
// and timestamp offset.
type playTrack struct {
	media   *description.Media
	clock   uint32
	pts     [128]bool // payload types of the media's formats
	setup   bool
	ssrc    uint32
	ssrcs   [128]uint32 // gortsplib's SSRC of each payload type's format
	channel int         // TCP: the interleaved channel of RTP (RTCP: the next)
	nextSeq uint16
	init    uint32 // RTP time of session time 0
	off     uint32 // added to stored timestamps in this PLAY
	haveOff bool
	// Sender reports (reports.go).
	nextSR  time.Time // the next is due; zero: with the first packet
	packets uint32    // RTP packets sent, for the SR (wrapping)
	octets  uint32    // RTP payload bytes sent, for the SR (wrapping)
}

// player is one RTSP session playing one recording.
type player struct {
	s      *Server
	ss     *gortsplib.ServerSession
	path   string
	rec    Recording
	count  DeliveryCounter // rec's, or nil
	m      store.Manifest
	desc   *description.Session
	stream *gortsplib.ServerStream
	tracks []*playTrack
	byMed  map[*description.Media]*playTrack
	log    *slog.Logger

	// Replay state: owned by the session goroutine (OnPlay, OnPause) while
	// no replay runs, and by the replay goroutine while it runs.
	reader  *store.Reader
	read    uint64    // packets read from reader (store.Reader.Release)
	queue   []qpacket // packets read ahead, head first
	head    int
	eof     bool
	played  bool
	sStart  time.Duration // session time at sNPT
	sNPT    time.Duration // NPT where the current PLAY started
	maxSent time.Duration // highest tt sent since sNPT
	conn    *batchConn    // TCP only
	// answer is a UDP play's RTSP connection, until its replay has waited
	// for the PLAY answer to be written (batchConn.awaitAnswer).
	answer    *batchConn
	wallStart time.Time // when session time sStart is (replay pacing)
	ntpZero   time.Time // NTP of session time 0 in sender reports
	cname     string    // RTCP CNAME of the session
	// setups are the SETUP answers given, in order; gortsplib writes the
	// Transport header (the interleaved channels it chose) into them.
	setups []*base.Response
	// udpHanded counts the RTP packets handed to gortsplib's UDP queue
	// (UDP only), which pause waits to see written.
	udpHanded uint64
	// udpDropped counts the packets sendUDP dropped at a full queue;
	// udpFullSince is when the queue began refusing what it was handed
	// (zero once it takes something again).
	udpDropped   uint64
	udpFullSince time.Time

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	playing bool
	closed  bool
}

// qpacket is a packet read ahead, in a buffer the player owns.
type qpacket struct {
	track uint8
	tt    time.Duration
	data  []byte
}

func newPlayer(s *Server, ss *gortsplib.ServerSession, path string, d *described) (*player, error) {
	stream := &gortsplib.ServerStream{Server: s.rtsp, Desc: d.desc}
	if err := stream.Initialize(); err != nil {
		return nil, err
	}
	p := &player{
		s: s, ss: ss, path: path, rec: d.rec, m: d.m, desc: d.desc, stream: stream,
		byMed: make(map[*description.Media]*playTrack),
		log:   s.log.With("path", path),
		cname: newCNAME(),
	}
	p.count, _ = d.rec.(DeliveryCounter)
	stats := stream.Stats()
	for _, medi := range d.desc.Medias {
		t := &playTrack{media: medi, clock: uint32(max(medi.Formats[0].ClockRate(), 1)), nextSeq: randUint16()}
		for _, f := range medi.Formats {
			t.pts[f.PayloadType()&0x7f] = true
		}
		if ms, ok := stats.Medias[medi]; ok {
			for f, fs := range ms.Formats {
				t.ssrc = fs.LocalSSRC
				t.ssrcs[f.PayloadType()&0x7f] = fs.LocalSSRC
			}
		}
		p.tracks = append(p.tracks, t)
		p.byMed[medi] = t
	}
	return p, nil
}

func (p *player) isPlaying() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.playing
}

// play answers a PLAY: position (a seek, the first PLAY) or resume, then
// start the replay. It runs on the session goroutine.
func (p *player) play(ctx *gortsplib.ServerHandlerOnPlayCtx) *base.Response {
	p.stopReplay()
	var start time.Duration
	var hasRange bool
	if !p.m.Live {
		var ok bool
		if start, hasRange, ok = parseNPT(ctx.Request.Header["Range"]); !ok {
			return &base.Response{StatusCode: base.StatusInvalidRange}
		}
	}
	wasPaused := ctx.Session.State() != gortsplib.ServerSessionStatePlay
	for _, medi := range ctx.Session.SetuppedMedias() {
		p.byMed[medi].setup = true
	}
	if tr := ctx.Session.SetuppedTransport(); tr != nil && *tr == gortsplib.TransportTCP {
		bc, ok := ctx.Conn.NetConn().(*batchConn)
		if !ok || !p.setChannels(ctx.Session.SetuppedMedias()) {
			p.log.Error("TCP session without its interleaved channels; refusing PLAY")
			return &base.Response{StatusCode: base.StatusInternalServerError}
		}
		p.conn = bc
	}

	var rng string
	var fail *base.Response
	if p.m.Live {
		rng, fail = p.positionLive(parseLiveRange(ctx.Request.Header["Range"]), wasPaused)
	} else {
		rng, fail = p.positionVOD(start, hasRange)
	}
	if fail != nil {
		return fail
	}
	if !p.played {
		// RTCP from the player (receiver reports, SDES, BYE) is counted,
		// nothing more. Set once: gortsplib reads UDP RTCP on another
		// goroutine once the session plays.
		ctx.Session.OnPacketRTCPAny(func(*description.Media, rtcp.Packet) { p.s.rtcpReceived.Add(1) })
	}
	p.played = true

	res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{}}
	res.Header["Range"] = base.HeaderValue{rng}
	var info headers.RTPInfo
	for _, medi := range ctx.Session.SetuppedMedias() {
		t := p.byMed[medi]
		seq := t.nextSeq
		ts := t.init + uint32(store.DurationToTicks(p.sStart, t.clock))
		info = append(info, &headers.RTPInfoEntry{
			URL:            p.trackURL(ctx, t),
			SequenceNumber: &seq,
			Timestamp:      &ts,
		})
	}
	res.Header["RTP-Info"] = info.Marshal()
	// The stream's first packet follows the answer (its RTP-Info): FFmpeg
	// drops what comes before it over TCP, and over UDP rtspsrc lost the
	// first frames of a seek on a loaded machine, where gortsplib's UDP
	// writer, started as the PLAY handler returns, sent them before the
	// answer was written.
	if bc, ok := ctx.Conn.NetConn().(*batchConn); ok {
		bc.holdForAnswer()
		if p.conn == nil {
			p.answer = bc
		}
	}
	p.startReplay()
	return res
}

// positionVOD resumes or seeks a recording with an end; it returns the
// Range of the answer. A PLAY without a Range resumes; one with a Range
// seeks, to the key frame at or before it, even when the Range is next to
// where the session paused: a player that seeks flushes its decoders
// (rtspsrc: PAUSE, flush, PLAY npt=T-), and a resume would give it the
// rest of a GOP it cannot decode (rtspsrc seeking to 2.5 s of a clip
// paused at 2.538 s decoded 87 of the 100 frames from the key frame at
// 2 s, the first of them broken).
func (p *player) positionVOD(start time.Duration, hasRange bool) (string, *base.Response) {
	if p.played && !hasRange {
		p.resume()
	} else if res := p.seek(p.s.ctx, start); res != nil {
		return "", res
	}
	end := ""
	if p.m.Duration > 0 {
		end = formatNPT(p.m.Duration)
	}
	return "npt=" + formatNPT(p.sNPT) + "-" + end, nil
}

// resume continues where the replay stopped: the next packet to send.
func (p *player) resume() {
	pos := p.position()
	p.sStart += pos - p.sNPT
	p.sNPT, p.maxSent = pos, pos
}

// seek positions the reader at the key frame at or before from (a tt, or
// liveEdge) and starts a new stretch of the session timeline there.
func (p *player) seek(ctx context.Context, from time.Duration) *base.Response {
	if !p.m.Live && p.m.Duration > 0 && from >= p.m.Duration && p.m.State == store.StateComplete {
		return &base.Response{StatusCode: base.StatusInvalidRange}
	}
	if p.reader != nil {
		_ = p.reader.Close()
		p.reader = nil
	}
	clear(p.queue) // their bytes are the old reader's
	p.queue, p.head, p.eof, p.read = p.queue[:0], 0, false, 0
	r, err := p.rec.NewReader(from)
	if err != nil {
		p.log.Warn("open reader", "from", from, "err", err)
		return refusal(err)
	}
	p.reader = r
	if p.m.Live {
		p.awaitLiveEdge(ctx)
	}
	p.preread()
	// The play starts at the requested time, or earlier at the key frame
	// before it (a request before the first key frame starts at the request,
	// as the origin does: Range npt=0 stays 0). A live play starts at the
	// packet the reader found.
	npt := from
	if p.m.Live {
		npt = 0
	}
	if len(p.queue) > 0 && (p.m.Live || p.queue[0].tt < from) {
		npt = p.queue[0].tt
	}
	if p.played {
		p.sStart += max(p.maxSent-p.sNPT, 0) + seekGap
	}
	p.sNPT, p.maxSent = npt, npt
	seen := make([]bool, len(p.tracks))
	for _, q := range p.queue {
		t := p.trackOf(q.track)
		if t == nil || seen[q.track] {
			continue
		}
		seen[q.track] = true
		if !p.played && len(q.data) >= 8 {
			// The first PLAY keeps the stored timestamps: offset 0.
			ts := binary.BigEndian.Uint32(q.data[4:8])
			t.init = ts - uint32(store.DurationToTicks(q.tt-npt, t.clock))
		}
	}
	for i, t := range p.tracks {
		t.haveOff = false
		if !p.played && !seen[i] {
			t.init = randUint32()
		}
	}
	return nil
}

// liveEdgeWait bounds how long a PLAY of a live stream that has no packet
// stored yet (its upstream just started) waits for the first one.
const liveEdgeWait = 5 * time.Second

// awaitLiveEdge waits for the first packet of a live recording that is still
// empty, so the play is anchored at that packet's time: anchored at 0, a
// live stream whose packets carry the origin's running time (minutes in)
// would be held back by all of it.
func (p *player) awaitLiveEdge(ctx context.Context) {
	if len(p.queue) > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, liveEdgeWait)
	defer cancel()
	if _, err := p.peek(ctx, 0, true); err != nil && !isEOF(err) && ctx.Err() == nil {
		p.log.Debug("waiting for the live edge", "err", err)
	}
}

// preread fills the queue with the first packets after a seek, without
// waiting at the tail of a recording that is still filling, until every
// set-up track has a packet or enough is read.
func (p *player) preread() {
	need := 0
	for _, t := range p.tracks {
		if t.setup {
			need++
		}
	}
	seen := make([]bool, len(p.tracks))
	for len(p.queue) < prereadPackets && need > 0 {
		q, err := p.peek(p.s.ctx, len(p.queue), false)
		if err != nil {
			if !errors.Is(err, store.ErrWouldBlock) {
				p.eof = p.eof || isEOF(err)
			}
			return
		}
		if int(q.track) < len(seen) && !seen[q.track] && p.tracks[q.track].setup {
			seen[q.track] = true
			need--
		}
		if q.tt-p.queue[0].tt > prereadSpan {
			return
		}
	}
}

// position is where a resumed PLAY continues: the next packet to send.
func (p *player) position() time.Duration {
	if p.head < len(p.queue) {
		return p.queue[p.head].tt
	}
	return p.maxSent
}

func (p *player) trackOf(i uint8) *playTrack {
	if int(i) >= len(p.tracks) {
		return nil
	}
	return p.tracks[i]
}

func (p *player) trackURL(ctx *gortsplib.ServerHandlerOnPlayCtx, t *playTrack) string {
	for i, medi := range p.desc.Medias {
		if medi == t.media {
			u := &base.URL{Scheme: ctx.Request.URL.Scheme, Host: ctx.Request.URL.Host,
				Path: ctx.Session.SetuppedPath() + "/trackID=" + strconv.Itoa(i)}
			return u.String()
		}
	}
	return ""
}

// setChannels reads the interleaved channel of each set-up media from the
// SETUP answers (gortsplib's choice: the player's, or the first free pair),
// which come in the order of medias; false when they do not match.
func (p *player) setChannels(medias []*description.Media) bool {
	var chans []int
	for _, res := range p.setups {
		var th headers.Transport
		if res.Header["Transport"] == nil || th.Unmarshal(res.Header["Transport"]) != nil {
			continue // a SETUP gortsplib refused after us
		}
		if th.InterleavedIDs == nil {
			return false
		}
		chans = append(chans, th.InterleavedIDs[0])
	}
	if len(chans) != len(medias) {
		return false
	}
	for i, medi := range medias {
		p.byMed[medi].channel = chans[i]
	}
	return true
}

// setupOK is the answer to an accepted SETUP, kept for setChannels.
func (p *player) setupOK() *base.Response {
	res := &base.Response{StatusCode: base.StatusOK}
	p.setups = append(p.setups, res)
	return res
}

// udpDrainWait bounds how long a PAUSE waits for the UDP packets the
// replay queued to be written (microseconds, normally).
const udpDrainWait = time.Second

// pause stops the replay where it is; PLAY resumes there, and no packet is
// lost across the pause. Over TCP every packet sent was written to the
// connection by then. Over UDP the packets go through gortsplib's session
// queue, which it discards when the PAUSE is answered: the answer waits
// until the queue has written what the replay handed it (queuewait).
func (p *player) pause() {
	p.stopReplay()
	if p.conn != nil || p.udpHanded == 0 {
		return
	}
	if left := queuewait.Drain(p.ss, p.udpHanded, udpDrainWait); left > 0 {
		p.log.Debug("UDP queue not written before PAUSE", "queued", left)
	}
}

func (p *player) startReplay() {
	ctx, cancel := context.WithCancel(p.s.ctx)
	done := make(chan struct{})
	p.mu.Lock()
	p.cancel, p.done, p.playing = cancel, done, true
	p.mu.Unlock()
	p.wallStart = time.Now().Add(p.liveTrail())
	if p.ntpZero.IsZero() {
		p.ntpZero = p.wallStart.Add(-p.sStart)
	}
	p.s.replays.Add(1)
	go func() {
		defer p.s.replays.Done()
		defer close(done)
		p.replay(ctx, p.wallStart, p.sNPT)
		p.mu.Lock()
		p.playing = false
		p.mu.Unlock()
	}()
}

// stopReplay stops the replay goroutine and waits for it.
func (p *player) stopReplay() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel, p.done = nil, nil
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// close releases everything of the session; it is idempotent.
func (p *player) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.stopReplay()
	if p.reader != nil {
		_ = p.reader.Close()
		p.reader = nil
	}
	p.rec.Close()
	p.stream.Close()
}

// parseNPT reads a Range header: start, whether there was one, and whether
// it was usable (absent counts as usable).
func parseNPT(v base.HeaderValue) (time.Duration, bool, bool) {
	if len(v) == 0 {
		return 0, false, true
	}
	var r headers.Range
	if err := r.Unmarshal(v); err != nil {
		return 0, false, false
	}
	npt, ok := r.Value.(*headers.RangeNPT)
	if !ok || npt.Start < 0 {
		return 0, false, false
	}
	return npt.Start, true, true
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func randUint16() uint16 { return uint16(randUint32()) }
