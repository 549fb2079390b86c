package rtspedge

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// TestLiveTCPPlayTrailsEdge: a TCP player that joins a live stream just
// after a key frame (so it would play at the live edge, every packet due
// as it arrives) gets its packets in batches of SendAhead (liveTrail), not
// a write per frame as the source appends them: over 2 s of the synthetic
// source (25 frames a second, each appended at once) it sees a burst about
// every 160 ms, where at the edge it saw one per frame. Its first packet,
// the key frame's, still comes with the join's first batch.
func TestLiveTCPPlayTrailsEdge(t *testing.T) {
	st, start := startLiveFeed(t)
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})
	p := newTestPlayer(t, serverURL(s, "live"), gortsplib.TransportTCP)
	p.mu.Lock()
	p.stampAll = true
	p.mu.Unlock()

	// PLAY 10 ms after the second key frame is stored: the play starts at
	// it, 10 ms behind the edge.
	join := time.NewTimer(time.Until(start.Add(liveGOPSpan + 10*time.Millisecond)))
	<-join.C
	played := time.Now()
	p.play(t, nil)
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
