package rtspedge

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/rtspmesh/rtspmesh/store"
)

// TestLiveTCPPlayTrailsEdge: a TCP player that joins a live stream just
// after a key frame (so it would play at the live edge, every packet due
// as it arrives) gets its packets in batches of SendAhead (liveTrail), not
// a write per frame as the source appends them: over 2 s of the synthetic
// source (25 frames a second, each appended at once) it sees a burst about
// every 160 ms, where at the edge it saw one per frame. Its first packet,
// the key frame's, still comes with the join's first batch.
func TestLiveTCPPlayTrailsEdge(t *testing.T) {
	_, p, played := playAfterKeyFrame(t, startLiveFeed)
	const span = 2 * time.Second
	first := p.waitPackets(t, 1, 5*time.Second)[0]
	if !first.keyStart {
		t.Fatal("the first packet does not start a key frame")
	}
	got := p.waitPackets(t, int(span.Seconds()*livePacketsSec), span+time.Second)
	var bursts int
	for i := range got {
		if i == 0 || got[i].at.Sub(got[i-1].at) > 10*time.Millisecond {
			bursts++
		}
	}
	t.Logf("first packet %v after PLAY; %d packets in %d bursts over %v", first.at.Sub(played), len(got), bursts,
		got[len(got)-1].at.Sub(got[0].at))
	// At SendAhead's 160 ms, 2 s are 13 batches (the join's first, then one
	// a SendAhead); a write per frame would be 50.
	if bursts > 20 {
		t.Fatalf("%d bursts of packets in %v: the play was not batched", bursts, span)
	}
}

// TestLiveTCPPlayAfterSourceStalls: the source stops for trailStall at
// frame trailStallAt (1.6 s), then
//
//   - "lags": goes on from there, late for good (a camera whose clock runs
//     slower than the node's gets there too, a little at a time). That
//     brings a trailing TCP play up to the stored edge, where it would
//     write each frame as it arrives; once its packets have all come late
//     for retrailAfter, the play is moved back to trail the edge (one move).
//   - "catches up": sends what it owes at once. Its packets come late for
//     no longer than the stall, and the play is not moved (no pause of its
//     own after the stall's).
//
// Either way, over 2 s of frames from a second after the stall the player
// sees a burst about every 160 ms, and not one packet is lost.
func TestLiveTCPPlayAfterSourceStalls(t *testing.T) {
	for _, c := range []struct {
		name  string
		after func(at time.Duration) time.Duration // frame time → when appended, from the stall on
		moves uint64
	}{
		{"lags", func(at time.Duration) time.Duration { return at + trailStall }, 1},
		{"catches up", func(at time.Duration) time.Duration { return max(at, trailStallAt*liveFrame+trailStall) }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, p, _ := playAfterKeyFrame(t, func(tb testing.TB) (*store.Store, time.Time) {
				return startLaggingFeed(tb, func(f int) time.Duration {
					at := time.Duration(f) * liveFrame
					if f >= trailStallAt {
						at = c.after(at)
					}
					return at
				})
			})
			if bursts := burstsAfterStall(t, p); bursts > 20 {
				t.Errorf("%d bursts of packets in 2 s of frames: the play was not batched", bursts)
			}
			if n := s.Stats().LiveRetrails; n != c.moves {
				t.Errorf("%d live plays moved back to trail the edge, want %d", n, c.moves)
			}
		})
	}
}

// The feed of TestLiveTCPPlayAfterSourceStalls stops for trailStall at
// frame trailStallAt (1.6 s).
const trailStallAt, trailStall = 40, 500 * time.Millisecond

// burstsAfterStall waits until p, which started at the key frame of 1 s
// (playAfterKeyFrame), has every packet up to 4 s of frames after the
// stall, checks that none was lost (sequence numbers without a gap), and
// counts the bursts in which the packets of 2 s of frames from 1 s after
// the stall ended came (a packet more than 10 ms after the one before
// starts one). 2 s at SendAhead's 160 ms are 13 batches; at the stored
// edge, a write per frame, 50.
func burstsAfterStall(t *testing.T, p *testPlayer) int {
	t.Helper()
	const firstFrame, from, to = liveGOP, trailStallAt + 2*liveFPS, trailStallAt + 4*liveFPS
	want := 0
	for f := firstFrame; f <= to; f++ {
		want += livePFrags
		if f%liveGOP == 0 {
			want += liveKeyFrags + 1 - livePFrags
		}
	}
	got := p.waitPackets(t, want, 15*time.Second)
	if !got[0].keyStart {
		t.Fatal("the first packet does not start a key frame")
	}
	bursts, measured := 0, 0
	for i := range got {
		if i > 0 && got[i].seq != got[i-1].seq+1 {
			t.Fatalf("packet %d: seq %d after %d: a packet was lost", i, got[i].seq, got[i-1].seq)
		}
		f := firstFrame + int((got[i].ts-got[0].ts)/(90000/liveFPS))
		if f < from || f >= to {
			continue
		}
		if measured == 0 || got[i].at.Sub(got[i-1].at) > 10*time.Millisecond {
			bursts++
		}
		measured++
	}
	t.Logf("%d packets of frames %d-%d in %d bursts", measured, from, to-1, bursts)
	if measured == 0 {
		t.Fatal("no packet of the frames measured")
	}
	return bursts
}

// playAfterKeyFrame starts a live feed (feed), a server of it and a TCP
// player stamping every packet's arrival, and PLAYs 10 ms after the feed's
// second key frame is stored: the play starts at it, 10 ms behind the
// edge. It returns the server, the player and when it sent PLAY.
func playAfterKeyFrame(t *testing.T, feed func(testing.TB) (*store.Store, time.Time)) (*Server, *testPlayer, time.Time) {
	t.Helper()
	st, start := feed(t)
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})
	p := newTestPlayer(t, serverURL(s, "live"), gortsplib.TransportTCP)
	p.mu.Lock()
	p.stampAll = true
	p.mu.Unlock()
	join := time.NewTimer(time.Until(start.Add(liveGOPSpan + 10*time.Millisecond)))
	<-join.C
	played := time.Now()
	p.play(t, nil)
	return s, p, played
}
