package rtspedge

import (
	"strconv"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	psdp "github.com/pion/sdp/v3"

	"github.com/rtspmesh/rtspmesh/store"
)

// playSpeed is the Speed a PLAY of o into a writer that holds bytes up to
// media time lastTT asks for; 0 asks for none.
//
// Only an on-demand stream is asked to hurry: a live one has nothing ahead
// to send. With a RateLimit the speed is at most the limit over the
// stream's bitrate, so an origin that honours Speed does not outrun the
// cap (an origin's send queue that the cap holds back may drop packets);
// the bitrate is the SDP's (b=TIAS, else b=AS: session level, else the
// sum of the media), else what the writer holds of it so far (a resumed
// fill). Without either, a capped fill asks for no Speed.
func (o *OriginSession) playSpeed(bytes uint64, lastTT time.Duration) float64 {
	speed := o.req.Speed
	if speed <= 1 || o.Manifest().Live {
		return 0
	}
	if o.req.RateLimit > 0 {
		bitrate := sdpBitrate(o.ssd)
		if bitrate <= 0 && lastTT >= time.Second && bytes > 0 {
			bitrate = float64(bytes) * 8 / lastTT.Seconds()
		}
		if bitrate <= 0 {
			return 0
		}
		speed = min(speed, float64(o.req.RateLimit)/bitrate)
	}
	if speed <= 1 {
		return 0
	}
	return speed
}

// sdpBitrate is the bitrate in bit/s that a session description declares:
// b=TIAS (bit/s) or b=AS (kbit/s) at session level, else the sum over the
// media of each one's; 0 when a medium declares neither.
func sdpBitrate(ssd *sdp.SessionDescription) float64 {
	if ssd == nil {
		return 0
	}
	if b := declared(ssd.Bandwidth); b > 0 {
		return b
	}
	var sum float64
	for _, md := range ssd.MediaDescriptions {
		b := declared(md.Bandwidth)
		if b <= 0 {
			return 0
		}
		sum += b
	}
	return sum
}

func declared(bws []psdp.Bandwidth) float64 {
	var as, tias float64
	for _, b := range bws {
		switch b.Type {
		case "TIAS":
			tias = float64(b.Bandwidth)
		case "AS":
			as = float64(b.Bandwidth) * 1000
		}
	}
	if tias > 0 {
		return tias
	}
	return as
}

// speedHeader is the Speed header value of speed.
func speedHeader(speed float64) string { return strconv.FormatFloat(speed, 'f', 3, 64) }

// A speed check (speedCheck) decides within these bounds: an origin that
// sends meta-info once its transmit times advanced speedCheckMeta on a
// track (as soon as speedCheckMetaEarly when RTP time and transmit time
// agree within a quarter); one that does not by wall-clock time, after
// speedCheckWindow, or earlier once speedCheckMedia of media arrived fast
// enough.
const (
	speedCheckMetaEarly = 80 * time.Millisecond
	speedCheckMeta      = 200 * time.Millisecond
	speedCheckWindow    = 500 * time.Millisecond
	speedCheckMedia     = 2 * time.Second
)

// speedCheck holds back the first packets of a session the origin granted
// a Speed above 1 until their RTP timestamps show that they are in media
// time, as RFC 2326 §12.35 wants them ("the timestamps remain in media
// time"), not slowed by the speed: gst-rtsp-server 1.22 implements Speed
// as a rate seek and slows its RTP clock, which would leave a recording
// that plays that many times too fast. Such a session is dropped before
// anything of it is stored (ErrSpeedScalesClock), and Reopen asks for no
// Speed. The witness is the origin's transmit times when it sends
// meta-info (no wait beyond a few packets), else wall-clock time: media
// must arrive at least halfway between real time and the granted speed.
type speedCheck struct {
	speed   float64
	firstAt time.Time // arrival of the first packet
	tracks  map[uint8]*trackClock
	held    []store.Packet // their RTP copied
}

// trackClock is what a speed check saw of one track: RTP timestamps, and
// the origin's transmit times when it sends them.
type trackClock struct {
	clock   uint32
	firstTS uint32
	firstTT time.Duration
	// The most RTP time and transmit time advanced past the first packet:
	// the most, so that frames sent out of presentation order (B-frames)
	// do not count as going back.
	rtpAdv, ttAdv time.Duration
	meta          bool
}

func newSpeedCheck(speed float64) *speedCheck {
	return &speedCheck{speed: speed, tracks: map[uint8]*trackClock{}}
}

// hold keeps p (its RTP copied), whose RTP timestamp is ts on a clock of
// clock Hz, arrived at now.
func (c *speedCheck) hold(p store.Packet, ts, clock uint32, now time.Time) {
	if c.firstAt.IsZero() {
		c.firstAt = now
	}
	tc := c.tracks[p.Track]
	if tc == nil {
		tc = &trackClock{clock: clock, firstTS: ts, firstTT: p.TT, meta: p.Flags&store.FlagMetaInfo != 0}
		c.tracks[p.Track] = tc
	}
	if tc.clock > 0 {
		tc.rtpAdv = max(tc.rtpAdv, store.TicksToDuration(int64(int32(ts-tc.firstTS)), tc.clock))
	}
	tc.ttAdv = max(tc.ttAdv, p.TT-tc.firstTT)
	p.RTP = append([]byte(nil), p.RTP...)
	c.held = append(c.held, p)
}

// verdict says whether the check can decide with the packets up to the
// one that arrived at last (or must, at the end of the stream), and
// whether the origin kept its RTP clock in media time.
func (c *speedCheck) verdict(last time.Time, end bool) (decided, honoured bool) {
	var rtp, tt, rtpMeta time.Duration // the most any track advanced
	for _, tc := range c.tracks {
		if tc.clock == 0 {
			continue
		}
		rtp = max(rtp, tc.rtpAdv)
		if tc.meta && tc.ttAdv > tt {
			tt, rtpMeta = tc.ttAdv, tc.rtpAdv
		}
	}
	if tt > 0 {
		// Media time by RTP against media time by the origin's word.
		r := rtpMeta.Seconds() / tt.Seconds()
		switch {
		case tt >= speedCheckMetaEarly && r >= 0.75 && r <= 4.0/3:
			return true, true
		case tt >= speedCheckMeta || end:
			return true, r >= (1+1/c.speed)/2
		}
		return false, false
	}
	wall := last.Sub(c.firstAt)
	fast := wall > 0 && rtp.Seconds()/wall.Seconds() >= (1+c.speed)/2
	switch {
	case end, wall >= speedCheckWindow:
		return true, fast || wall <= 0
	case rtp >= speedCheckMedia && fast:
		return true, true
	}
	return false, false
}

// ratio is the media seconds by RTP clock that arrived per wall-clock
// second up to last, for the log.
func (c *speedCheck) ratio(last time.Time) float64 {
	var rtp time.Duration
	for _, tc := range c.tracks {
		rtp = max(rtp, tc.rtpAdv)
	}
	if wall := last.Sub(c.firstAt); wall > 0 {
		return rtp.Seconds() / wall.Seconds()
	}
	return 0
}
