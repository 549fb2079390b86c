package rtspedge

import (
	"fmt"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// MaxPlayerPacket is the largest RTP packet (the 12-byte header, CSRCs and
// extension included) a player can be sent: 1472 bytes, the UDP payload of
// one unfragmented datagram on a 1500-byte Ethernet MTU over IPv4
// (1500 − 20 IPv4 header − 8 UDP header). gortsplib's server writes at most
// its MaxPacketSize, which is this number, over UDP and TCP alike: a larger
// stored packet could never be played. (Over IPv6 the unfragmented bound is
// 1452; gortsplib sends up to 1472 there too and the IP layer fragments.)
const MaxPlayerPacket = 1472

// DefaultMaxBitrate is OriginRequest.MaxBitrate when it is zero: 50 Mbit/s,
// above a 4K H.265 stream.
const DefaultMaxBitrate = 50_000_000

// Slack of the stream budget: a VOD stream may store its SDP duration plus
// a quarter plus vodSlack at the maximum bitrate; a live one, the wall time
// since PLAY plus liveSlack (origins burst a GOP or more at the start).
const (
	vodSlack  = 2 * time.Second
	liveSlack = 5 * time.Second
)

// streamBudget bounds the RTP bytes one Run stores.
type streamBudget struct {
	bytesPerSec float64
	vod         time.Duration // VOD: the SDP duration with slack; 0 for live
	stored      int64         // bytes the writer held before Run (a resume) plus those Run appended
}

func newStreamBudget(req OriginRequest, m store.Manifest, already int64) streamBudget {
	rate := req.MaxBitrate
	if rate <= 0 {
		rate = DefaultMaxBitrate
	}
	b := streamBudget{bytesPerSec: float64(rate) / 8, stored: already}
	if !m.Live && m.Duration > 0 {
		b.vod = m.Duration + m.Duration/4 + vodSlack
	}
	return b
}

// allowed is how many bytes may be stored in all at now for a run that
// started playing at started.
func (b *streamBudget) allowed(started, now time.Time) int64 {
	span := b.vod
	if span == 0 {
		span = now.Sub(started) + liveSlack
	}
	return int64(b.bytesPerSec * span.Seconds())
}

// admit counts a packet of n bytes, or says why the stream is over its limits.
func (b *streamBudget) admit(n int, started, now time.Time) error {
	if n > MaxPlayerPacket {
		return fmt.Errorf("%w: an RTP packet of %d bytes, larger than the %d a player can receive", ErrStreamLimit, n, MaxPlayerPacket)
	}
	limit := b.allowed(started, now)
	if b.stored+int64(n) > limit {
		what := "over the SDP duration"
		if b.vod == 0 {
			what = "since PLAY"
		}
		return fmt.Errorf("%w: %d bytes stored and %d more arriving, over the %d allowed (%.1f Mbit/s %s, with slack)",
			ErrStreamLimit, b.stored, n, limit, b.bytesPerSec*8/1e6, what)
	}
	b.stored += int64(n)
	return nil
}
