package rtspedge

import (
	"strconv"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	psdp "github.com/pion/sdp/v3"
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
