package node_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// reconnectPacket is one RTP packet a reconnectPlayer received.
type reconnectPacket struct {
	media *description.Media
	ts    uint32
	at    time.Time
}

// reconnectPlayer is one gortsplib client session playing a live stream
// over TCP, keeping every packet's timestamp and arrival, and the RTCP BYEs.
type reconnectPlayer struct {
	clocks map[*description.Media]int // clock rate per media

	mu    sync.Mutex
	pkts  []reconnectPacket
	byeAt time.Time // first RTCP BYE
	ended chan error
}

func startReconnectPlayer(t *testing.T, url string) *reconnectPlayer {
	t.Helper()
	c, desc := setUpPlayer(t, url)
	p := &reconnectPlayer{clocks: map[*description.Media]int{}, ended: make(chan error, 1)}
	for _, m := range desc.Medias {
		p.clocks[m] = m.Formats[0].ClockRate()
	}
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		p.mu.Lock()
		p.pkts = append(p.pkts, reconnectPacket{media: m, ts: pkt.Timestamp, at: time.Now()})
		p.mu.Unlock()
	})
	c.OnPacketRTCPAny(func(_ *description.Media, pkt rtcp.Packet) {
		if _, ok := pkt.(*rtcp.Goodbye); ok {
			p.mu.Lock()
			if p.byeAt.IsZero() {
				p.byeAt = time.Now()
			}
			p.mu.Unlock()
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("play: %v", err)
	}
	go func() { p.ended <- c.Wait() }()
	return p
}

func (p *reconnectPlayer) packets() []reconnectPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]reconnectPacket(nil), p.pkts...)
}

func (p *reconnectPlayer) bye() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byeAt
}

// receivedSince counts the packets that arrived after since.
func (p *reconnectPlayer) receivedSince(since time.Time) int {
	n := 0
	for _, pk := range p.packets() {
		if pk.at.After(since) {
			n++
		}
	}
	return n
}

// liveReconnectConfig is a node config for these tests: the origin counts
// as lost after 2 s of silence (origin_timeout also bounds each request of
// the first session: 1 s was too short for a loaded machine's first
// DESCRIBE).
func liveReconnectConfig(t *testing.T, org *origin.Origin, reconnect time.Duration) node.Config {
	cfg := nodeConfig(t, org)
	cfg.Mesh.Enabled = false
	cfg.OriginTimeout = node.Duration(2 * time.Second)
	cfg.Cache.LiveReconnect = node.Duration(reconnect)
	return cfg
}

func liveOrigin(c *origin.Config) { c.Live = map[string][]byte{"live": origin.SampleClip()} }

// TestLiveOriginReconnect: the live origin drops (it restarts on the same
// port: a new clock, packet numbers and timestamps) or stalls (sends nothing
// for origin_timeout); the node opens exactly one new origin session, and
// the same player session goes on receiving, without an error or a BYE, with
// timestamps that go on increasing by the time that passed.
func TestLiveOriginReconnect(t *testing.T) {
	t.Parallel()
	for _, stall := range []bool{false, true} {
		name := map[bool]string{false: "drop", true: "stall"}[stall]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			org, stopOrg := startOriginStoppable(t, liveOrigin)
			n := startNode(t, liveReconnectConfig(t, org, 10*time.Second))
			p := startReconnectPlayer(t, n.url("o/live"))
			testkit.Eventually(t, 10*time.Second, "a second of packets", func() bool {
				pk := p.packets()
				return len(pk) > 0 && pk[len(pk)-1].at.Sub(pk[0].at) > time.Second
			})

			broken := time.Now()
			again := org // where the new origin session is
			if stall {
				if got := org.Stall("live"); got != 1 {
					t.Fatalf("stalled %d origin sessions, want 1", got)
				}
			} else {
				stopOrg()
				again = startOrigin(t, func(c *origin.Config) { liveOrigin(c); c.Listen = org.Addr() })
			}
			wantPlays := map[bool]int{false: 1, true: 2}[stall]
			testkit.Eventually(t, 15*time.Second, "a new origin session", func() bool {
				_, plays := again.Sessions("live")
				return plays >= wantPlays
			})
			resumed := time.Now()
			testkit.Eventually(t, 10*time.Second, "packets after the reconnect", func() bool { return p.receivedSince(resumed) > 50 })
			mid := time.Now()
			testkit.Eventually(t, 10*time.Second, "packets a second after the reconnect", func() bool {
				return p.receivedSince(mid.Add(time.Second)) > 0
			})

			select {
			case err := <-p.ended:
				t.Fatalf("the player session ended: %v", err)
			default:
			}
			if !p.bye().IsZero() {
				t.Fatal("the player got an RTCP BYE")
			}
			if _, plays := again.Sessions("live"); plays != wantPlays {
				t.Fatalf("origin sessions for the live stream: %d, want %d (one new)", plays, wantPlays)
			}
			if in, err := n.Stream("o/live"); err != nil || in.State != store.StateLive {
				t.Fatalf("recording after the reconnect: %+v, %v; want it live", in, err)
			}
			gap := checkTimestampsGoOn(t, p, broken)
			t.Logf("%s: origin broken → new origin session %v, player's longest gap %v",
				name, resumed.Sub(broken).Round(time.Millisecond), gap.Round(time.Millisecond))
		})
	}
}

// checkTimestampsGoOn checks every track's timestamps: they increase (video
// frames may come out of order by less than half a second), and across the
// longest pause after broken they advance by about the pause. It returns the
// longest pause.
func checkTimestampsGoOn(t *testing.T, p *reconnectPlayer, broken time.Time) time.Duration {
	t.Helper()
	last := map[*description.Media]reconnectPacket{}
	var longest time.Duration
	for _, pk := range p.packets() {
		prev, ok := last[pk.media]
		last[pk.media] = pk
		if !ok {
			continue
		}
		clock := float64(p.clocks[pk.media])
		step := float64(int32(pk.ts-prev.ts)) / clock // seconds
		if step < -0.5 || step > 30 {
			t.Fatalf("%s timestamps jump by %.3f s", pk.media.Type, step)
		}
		pause := pk.at.Sub(prev.at)
		// A pause of 200 ms is an outage (a TCP player gets a batch every
		// SendAhead, 160 ms); a dropped origin is back within 250 ms-1 s,
		// a stalled one after origin_timeout (2 s). The step may fall short
		// of the pause by a batch's interval (the packet after a batch is
		// due 160 ms after the one before it left) plus a loaded machine's
		// delay: ci30 saw an audio packet 574 ms after the one before it,
		// 21 ms later in the stream, outside any outage.
		if pk.at.Before(broken) || pause < 200*time.Millisecond {
			continue
		}
		longest = max(longest, pause)
		if d := step - pause.Seconds(); d < -0.8 || d > 0.5 {
			t.Fatalf("%s: after a pause of %v the timestamps advance by %.3f s", pk.media.Type, pause, step)
		}
	}
	if longest == 0 {
		t.Fatal("no pause after the origin broke: did the player see the outage at all?")
	}
	return longest
}

// TestLiveOriginGone: the live origin goes away for good; after
// cache.live_reconnect the player gets an RTCP BYE (a clean end of stream)
// and the recording is finished, not left filling. The attempts are logged
// without the origin's credentials.
func TestLiveOriginGone(t *testing.T) {
	t.Parallel()
	const reconnect = 2 * time.Second
	org, stopOrg := startOriginStoppable(t, liveOrigin)
	cfg := liveReconnectConfig(t, org, reconnect)
	cfg.Origins[0].URL = "rtsp://viewer:s3cretpw@" + org.Addr()
	var logs testkit.Buffer
	nn, err := node.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "node", nn.Run)
	<-nn.Ready()
	n := &testNode{Node: nn}
	p := startReconnectPlayer(t, n.url("o/live"))
	testkit.Eventually(t, 10*time.Second, "packets", func() bool { return len(p.packets()) > 50 })

	// The clock starts before the stop: the node may see the connection
	// close (and start its live_reconnect window) before stopOrg returns,
	// which waits for the origin's Run (26 ms under -race in the CI run of 2026-12-03).
	stopping := time.Now()
	stopOrg()
	testkit.Eventually(t, reconnect+5*time.Second, "an RTCP BYE", func() bool { return !p.bye().IsZero() })
	took := p.bye().Sub(stopping)
	if took < reconnect {
		t.Fatalf("BYE %v after the origin stopped: before live_reconnect %v", took, reconnect)
	}
	testkit.Eventually(t, 5*time.Second, "the recording finished", func() bool {
		in, err := n.Stream("o/live")
		return err == nil && in.State == store.StatePartial
	})
	t.Logf("origin gone → player's BYE after %v (live_reconnect %v)", took.Round(time.Millisecond), reconnect)
	out := logs.String()
	if !strings.Contains(out, "attempt=2") || !strings.Contains(out, "live origin did not come back") {
		t.Errorf("reconnection attempts not logged:\n%s", out)
	}
	if strings.Contains(out, "s3cretpw") || strings.Contains(out, "viewer") {
		t.Errorf("the origin's credentials are in the log:\n%s", out)
	}
}
