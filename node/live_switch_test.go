package node_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// TestLiveRelaySwitchesOriginSession: a live relay whose source dies and
// whose next source pulled the stream in another origin session (a healed
// partition's other half: its own RTP sequence numbers, timestamps and
// packet numbers, as a camera starts each session at random) re-bases that
// source's packets onto its recording: its player sees one stream. A and
// B cannot reach each other and each fill the stream from the origin; R,
// a member of both, relays A (its designated filler) until A stops, then
// B. Before the fix R stored B's packets as they came: the player's
// timestamps jumped (CI: "audio RTP timestamp moved 28706.679 s").
func TestLiveRelaySwitchesOriginSession(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"sw": origin.SampleClip()}
		c.RandomRTPBase = true
	})
	const path = "o/sw"
	// Three lone nodes, named by the filler rule for the stream: A the
	// closest to its key, B the next, R the farthest, so that each of A
	// and B is the filler of its half (it pulls the stream from the origin
	// itself) and R relays A, then B.
	free := []*testNode{startNode(t, nodeConfig(t, org)), startNode(t, nodeConfig(t, org)), startNode(t, nodeConfig(t, org))}
	var order []*testNode
	for len(free) > 0 {
		for i, n := range free {
			if fillerIs(t, org, free, n, path) {
				order, free = append(order, n), slices.Delete(free, i, i+1)
				break
			}
		}
	}
	a, b, r := order[0], order[1], order[2]
	for _, pair := range [][2]*testNode{{a, b}, {b, a}} {
		if err := node.MeshOf(pair[0].Node).Block(pair[1].PeerID(), true); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*testNode{a, b} {
		if err := node.MeshOf(r.Node).Connect(t.Context(), n.MeshAddrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, []*testNode{a, b}, 2)
	waitMembers(t, []*testNode{r}, 3)

	// Players on A and B keep their fills running until the test ends.
	var done atomic.Bool
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { done.Store(true) })
	for _, n := range []*testNode{a, b} {
		started := make(chan struct{})
		var once sync.Once
		wg.Go(func() {
			err := playUntilPacket(t.Context(), n.url(path), func(*description.Media, *rtp.Packet) bool {
				once.Do(func() { close(started) })
				return done.Load()
			})
			if err != nil && !done.Load() {
				t.Errorf("player on %s: %v", n.PeerID(), err)
			}
		})
		select {
		case <-started:
		case <-time.After(15 * time.Second):
			t.Fatalf("no packet on %s", n.PeerID())
		}
	}
	if _, plays := org.Sessions("sw"); plays != 2 {
		t.Fatalf("%d origin sessions, want 2: A's and B's", plays)
	}

	c := newContinuity()
	var switchedAt atomic.Int64
	var packets atomic.Int64
	playing := make(chan error, 1)
	go func() {
		playing <- playUntilPacket(t.Context(), r.url(path), func(m *description.Media, p *rtp.Packet) bool {
			c.packet(m, p)
			packets.Add(1)
			at := switchedAt.Load()
			return at != 0 && time.Since(time.Unix(0, at)) > 2*time.Second
		})
	}()
	source := func() string {
		in, err := r.Stream(path)
		if err != nil {
			return ""
		}
		return in.Source
	}
	testkit.Eventually(t, 15*time.Second, "R relays A", func() bool { return source() == a.PeerID() && packets.Load() > 100 })
	a.stop()
	testkit.Eventually(t, 15*time.Second, "R relays B", func() bool { return source() == b.PeerID() })
	switchedAt.Store(time.Now().UnixNano())
	if err := <-playing; err != nil {
		t.Fatalf("R's player: %v", err)
	}
	// The pause is A's loss and the lookup of B, and the wait for B's next
	// key frame (a GOP): not this test's point.
	if err := c.err(10 * time.Second); err != nil {
		t.Fatalf("R's player across the switch from A's origin session to B's: %v", err)
	}
	if _, plays := org.Sessions("sw"); plays != 2 {
		t.Errorf("%d origin sessions, want still 2 (R relays, never pulls)", plays)
	}
	t.Logf("R's player: longest pause %v", c.longest.Round(time.Millisecond))
}
