package node_test

import (
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// srPlayer plays a stream over TCP and keeps the sender reports it gets, by
// the clock rate of their track (a track's identity across sessions).
type srPlayer struct {
	mu    sync.Mutex
	clock map[uint32]uint32 // SSRC → clock rate
	srs   map[uint32][]srAt // clock rate → reports
	ts    map[[32]byte]rxTS // payload hash → RTP timestamp and clock rate
	dup   map[[32]byte]bool // payloads seen more than once
}

type rxTS struct{ ts, clock uint32 }

type srAt struct {
	ntp time.Time
	rtp uint32
}

func playForReports(t *testing.T, url string) *srPlayer {
	t.Helper()
	c, _ := setUpPlayer(t, url)
	p := &srPlayer{clock: map[uint32]uint32{}, srs: map[uint32][]srAt{}, ts: map[[32]byte]rxTS{}, dup: map[[32]byte]bool{}}
	c.OnPacketRTPAny(func(_ *description.Media, f format.Format, pkt *rtp.Packet) {
		h := sha256.Sum256(pkt.Payload)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.clock[pkt.SSRC] = uint32(f.ClockRate())
		if _, seen := p.ts[h]; seen {
			p.dup[h] = true
		}
		p.ts[h] = rxTS{pkt.Timestamp, uint32(f.ClockRate())}
	})
	c.OnPacketRTCPAny(func(_ *description.Media, pkt rtcp.Packet) {
		sr, ok := pkt.(*rtcp.SenderReport)
		if !ok {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if clock := p.clock[sr.SSRC]; clock != 0 {
			p.srs[clock] = append(p.srs[clock], srAt{ntp: ntpToTime(sr.NTPTime), rtp: sr.RTPTime})
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("PLAY %s: %v", url, err)
	}
	return p
}

// sameInstants pairs the RTP timestamps of packets p and q both received
// once, by payload (a session's timestamps may be offset from another's):
// p's timestamp, q's, and the clock rate.
func (p *srPlayer) sameInstants(q *srPlayer) [][3]uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	var out [][3]uint32
	for h, a := range p.ts {
		if b, ok := q.ts[h]; ok && !p.dup[h] && !q.dup[h] && a.clock == b.clock {
			out = append(out, [3]uint32{a.ts, b.ts, a.clock})
		}
	}
	return out
}

// reports is a copy of the reports by clock rate.
func (p *srPlayer) reports() map[uint32][]srAt {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[uint32][]srAt, len(p.srs))
	for k, v := range p.srs {
		out[k] = append([]srAt(nil), v...)
	}
	return out
}

func ntpToTime(v uint64) time.Time {
	sec := int64(v>>32) - 2208988800
	return time.Unix(sec, int64((v&0xffffffff)*uint64(time.Second)>>32))
}

// ntpAt maps an RTP timestamp through a sender report.
func ntpAt(sr srAt, ts, clock uint32) time.Time {
	d := int64(int32(ts - sr.rtp))
	return sr.ntp.Add(time.Duration(d * int64(time.Second) / int64(clock)))
}

// TestLiveSenderReportsThroughRelay: a player of a live stream on a node
// that relays it from a neighbour (which pulls it from the origin) gets
// sender reports whose NTP time is the origin's for the same RTP time: the
// origin's clock survives the cache and the mesh.
func TestLiveSenderReportsThroughRelay(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	a := meshNode(t, org, nil)
	b := meshNode(t, org, nil, a)
	direct := playForReports(t, "rtsp://"+org.Addr()+"/live")
	onA := playForReports(t, a.url("o/live"))
	testkit.Eventually(t, 10*time.Second, "a sender report of both tracks on A", func() bool { return len(onA.reports()) == 2 })
	onB := playForReports(t, b.url("o/live"))
	// The first report comes with the first packets, maybe before the
	// origin's first report reached the node (then it follows the
	// session's clock); the second 2.5–7.5 s later.
	for _, p := range []*srPlayer{onA, onB} {
		testkit.Eventually(t, 15*time.Second, "two sender reports of both tracks", func() bool {
			r := p.reports()
			return len(r) == 2 && len(r[90000]) >= 2 && len(r[48000]) >= 2
		})
	}
	if in, err := b.Stream("o/live"); err != nil || in.Source == "origin" {
		t.Fatalf("B's live recording %+v (%v): want one relayed from A", in, err)
	}
	origin := direct.reports()
	for name, p := range map[string]*srPlayer{"A (from the origin)": onA, "B (relayed from A)": onB} {
		srs := p.reports()
		pairs := p.sameInstants(direct)
		if len(pairs) < 100 {
			t.Fatalf("%s: %d packets also seen from the origin, want 100 or more", name, len(pairs))
		}
		worst := map[uint32]time.Duration{}
		for clock, rs := range srs {
			sr, osr := rs[len(rs)-1], origin[clock][0]
			for _, pair := range pairs {
				if pair[2] != clock {
					continue
				}
				d := ntpAt(sr, pair[0], clock).Sub(ntpAt(osr, pair[1], clock))
				if d < 0 {
					d = -d
				}
				worst[clock] = max(worst[clock], d)
			}
		}
		t.Logf("%s: %d packets matched by payload; NTP of their RTP time by the last sender report, worst distance from the origin's, by clock rate: %v", name, len(pairs), worst)
		for clock, d := range worst {
			if d > 2*time.Millisecond {
				t.Errorf("%s, clock %d: a packet's NTP by the node's sender report is %v from the origin's", name, clock, d)
			}
		}
		if len(worst) != 2 {
			t.Errorf("%s: packets of %d tracks matched, want 2", name, len(worst))
		}
	}
}
