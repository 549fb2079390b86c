package origin

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/rtspedge/queuewait"
)

// session is one RTSP session: its stream, its meta-info fields per track,
// and at most one running pacer.
type session struct {
	o *Origin

	mu      sync.Mutex
	e       *entry
	stream  *gortsplib.ServerStream
	fields  []metainfo.Fields // per track; nil: plain RTP
	next    int64             // absolute packet index a resume starts from
	pend    *play             // prepared by PLAY, started by its response
	run     *pacer
	counted bool // counted in entry.plays
	closed  bool
	seqOff  uint16        // Config.RandomRTPBase: added to every sequence number
	tsOff   uint32        // and to every RTP timestamp, of every track
	handed  atomic.Uint64 // RTP packets handed to the stream since SETUP
	lost    atomic.Uint64 // packets gortsplib dropped: the session's queue was full
}

// playRequest is what a PLAY asked for.
type playRequest struct {
	seek       bool
	from       time.Duration
	speed      float64
	speedAsked bool
}

// play is a prepared PLAY: the first absolute packet index, its tt and the
// pacing speed.
type play struct {
	n     int64
	from  time.Duration
	speed float64
	live  bool
}

// pacer is one run of the pacing goroutine.
type pacer struct {
	stop chan struct{}
	done chan struct{}
	next int64 // written by the goroutine before done closes
}

func (s *session) entry() *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e
}

// setup binds the session to e on its first SETUP and creates its stream.
func (s *session) setup(e *entry, srv *gortsplib.Server, admit func(*entry) error) (*gortsplib.ServerStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		if s.e != e {
			return nil, fmt.Errorf("setup %s: session already set up for %s", e.path, s.e.path)
		}
		return s.stream, nil
	}
	st := &gortsplib.ServerStream{Server: srv, Desc: e.clip.Desc}
	if err := st.Initialize(); err != nil {
		return nil, fmt.Errorf("setup %s: %w", e.path, err)
	}
	if err := admit(e); err != nil {
		st.Close()
		return nil, err
	}
	s.e, s.stream = e, st // counted by admit: close uncounts it
	s.fields = make([]metainfo.Fields, e.clip.Tracks())
	return st, nil
}

func (s *session) setFields(track int, f metainfo.Fields) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fields[track] = f
}

// prepare stops a running pacer and computes where the next play starts:
// VOD at the key frame at or before the Range (else where it paused), live at
// the latest key frame of the shared clock (livePos since the epoch).
func (s *session) prepare(req playRequest, livePos time.Duration) play {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.e.clip
	p := play{speed: req.speed, live: s.e.live}
	switch {
	case s.e.live:
		p.n = c.liveSeek(livePos)
	case req.seek:
		p.n = c.seek(req.from)
	default:
		p.n = s.next
		if p.n >= int64(len(c.Packets)) {
			p.n = 0
		}
	}
	p.from = c.at(p.n).tt
	s.pend = &p
	return p
}

// rtpInfo is the RTP-Info of a prepared play: for every track the sequence
// number of its first packet and the RTP time of the play's start.
func (s *session) rtpInfo(p play, reqURL *base.URL, setupPath string) base.HeaderValue {
	s.mu.Lock()
	c := s.e.clip
	s.mu.Unlock()
	var ri headers.RTPInfo
	for track := 0; track < c.Tracks(); track++ {
		u := &base.URL{Scheme: reqURL.Scheme, Host: reqURL.Host, Path: setupPath + "/trackID=" + fmt.Sprint(track)}
		e := &headers.RTPInfoEntry{URL: u.String()}
		if m, ok := c.firstOfTrack(p.n, track, p.live); ok {
			a := c.at(m)
			seq := a.seq + s.seqOff
			rtptime := a.ts + s.tsOff - uint32(int64((a.tt-p.from)/time.Millisecond)*int64(c.clockRate[track])/1000)
			e.SequenceNumber, e.Timestamp = &seq, &rtptime
		}
		ri = append(ri, e)
	}
	return ri.Marshal()
}

// start launches the prepared play (ok: the PLAY response is 200).
func (s *session) start(ok bool) {
	o := s.o
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pend
	s.pend = nil
	if !ok || p == nil || s.closed || s.run != nil {
		return
	}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	if !s.counted {
		s.counted = true
		s.e.plays++
	}
	o.pacers.Add(1)
	o.mu.Unlock()
	r := &pacer{stop: make(chan struct{}), done: make(chan struct{}), next: p.n}
	s.run = r
	fields := append([]metainfo.Fields(nil), s.fields...)
	go s.pace(r, *p, s.e.clip, s.stream, fields)
}

// stop stops the pacer, if any, and remembers where it stopped.
func (s *session) stop() {
	s.mu.Lock()
	r := s.run
	s.run = nil
	s.mu.Unlock()
	if r == nil {
		return
	}
	close(r.stop)
	<-r.done
	s.mu.Lock()
	s.next = r.next
	s.mu.Unlock()
}

// drainWait bounds how long a PAUSE waits for the session's queue to write
// what the pacer handed it (microseconds, normally).
const drainWait = time.Second

// pause stops the pacer; the next PLAY without a Range resumes after the
// last packet it handed to the stream. gortsplib discards the session's
// write queue once the PAUSE is answered, so the answer waits until the
// queue has written those packets (queuewait): over TCP they then reach
// the player before the answer does.
func (s *session) pause(ss *gortsplib.ServerSession) {
	s.mu.Lock()
	s.pend = nil
	s.mu.Unlock()
	s.stop()
	queuewait.Drain(ss, s.handed.Load(), drainWait)
}

// close stops the session (once: gortsplib closes a session once); it
// returns the entry the session had set up, nil if none.
func (s *session) close() *entry {
	s.mu.Lock()
	s.closed = true
	st, e := s.stream, s.e
	s.mu.Unlock()
	s.stop()
	if st != nil {
		st.Close()
	}
	return e
}

// dropped says whether the controlled fault (Config.DropAtSpeed) drops a
// packet at tt of a play at speed that dropped *n so far (counted).
func (o *Origin) dropped(speed float64, tt time.Duration, n *int) bool {
	c := &o.cfg
	if c.DropAtSpeed <= 0 || speed < c.DropAtSpeed || tt < c.DropAt || *n >= c.DropCount {
		return false
	}
	*n++
	return true
}

// byeGrace is how much of the play's time the end's SR + BYE follows the
// last packet by (as a node's server does): GStreamer 1.22's rtpjitterbuffer
// deadlocks at an EOS that reaches it while it still holds a packet (its
// timer thread drains its timers at the EOS and sleeps; the held packet,
// pushed after, re-arms the end-of-stream timer; the EOS then waits for the
// sleeping timer thread forever), and rtspsrc makes the EOS at the BYE. Its
// push thread decodes what it pushes, so on a loaded machine it holds the
// last packet for a while: with the BYE right after the last packet,
// testdata/gst-play.py over TCP did not end in 17 of 184 plays of the interop
// clip (3 or 4 at once, one CPU busy), with byeGrace in 1 of 380.
const byeGrace = 200 * time.Millisecond

// pace sends packets from p.n at their transmit time until the clip ends
// (VOD: then, byeGrace later, an RTCP SR+BYE per track), the session stops
// it, or a write fails; sender reports go with the packets (reporter).
func (s *session) pace(r *pacer, p play, c *Clip, st *gortsplib.ServerStream, fields []metainfo.Fields) {
	defer s.o.pacers.Done()
	defer close(r.done)

	origin, ttOrigin, speed := time.Now(), p.from, p.speed
	if p.live {
		origin, ttOrigin, speed = s.o.epoch, 0, 1
	}
	rp := newReporter(st, c, origin.Add(-time.Duration(float64(ttOrigin)/speed)), speed, s.tsOff)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// until waits for t; false when the session stops the pacer first.
	until := func(t time.Time) bool {
		if d := time.Until(t); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
				return true
			case <-r.stop:
				return false
			}
		}
		select {
		case <-r.stop:
			return false
		default:
			return true
		}
	}
	buf := make([]byte, 0, 1500)
	total := int64(len(c.Packets))
	var last time.Time // when the last packet was handed to the stream: at or after its due time
	drops := 0         // packets the controlled fault dropped (Config.DropAtSpeed)
	for n := p.n; ; n++ {
		r.next = n
		if !p.live && n >= total {
			// byeGrace of the play's time after the last packet, counted
			// from when it left (later than its due time when the pacer
			// fell behind).
			if until(last.Add(time.Duration(float64(byeGrace) / speed))) {
				rp.bye()
			}
			return
		}
		a := c.at(n)
		due := origin.Add(time.Duration(float64(a.tt-ttOrigin) / speed))
		if !until(due) {
			return
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(a.raw); err != nil {
			return // cannot happen: Packetize marshalled it
		}
		pkt.SequenceNumber, pkt.Timestamp = a.seq+s.seqOff, a.ts+s.tsOff
		if f := fields[a.track]; f != nil {
			buf = metainfo.Encode(buf[:0], f, metainfo.Info{
				TT: a.tt, FT: a.ft, PN: uint64(n), SQ: a.seq, MD: pkt.Payload,
			})
			pkt.Payload = buf
		}
		if s.o.dropped(speed, a.tt, &drops) {
			continue // the controlled fault: as if the session's queue overflowed
		}
		if err := st.WritePacketRTPWithNTP(st.Desc.Medias[a.track], &pkt, due); err != nil {
			return
		}
		s.handed.Add(1)
		last = time.Now()
		if !rp.sent(a.track, len(pkt.Payload), last) {
			return
		}
		s.o.sent.Add(1)
	}
}
