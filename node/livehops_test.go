package node_test

import (
	"slices"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// TestLiveMaxHops: A pulls a live stream from the origin and refuses C1 and
// C2 (an allow-list); B relays it from A. C1 (mesh.live_max_hops 1) must not
// relay from B, two hops from the origin, and goes to the origin; C2
// (live_max_hops 2) relays from B.
func TestLiveMaxHops(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	b := meshNode(t, org, nil)
	hops := func(n int) func(*node.Config) { return func(c *node.Config) { c.Mesh.LiveMaxHops = n } }
	c1 := meshNode(t, org, hops(1), b)
	c2 := meshNode(t, org, hops(2), b)
	a := meshNode(t, org, func(c *node.Config) { c.Mesh.AllowPeers = []string{b.PeerID()} }, b)
	testkit.Eventually(t, 10*time.Second, "A joined B", func() bool { return len(a.Peers()) > 0 })

	for _, n := range []*testNode{a, b} {
		if err := firstPacket(t.Context(), n.url("o/live")); err != nil {
			t.Fatal(err)
		}
	}
	if in, _ := b.Stream("o/live"); in.Source != a.PeerID() || !slices.Equal(in.Via, []string{a.PeerID()}) {
		t.Fatalf("B: source %q via %v, want A via [A]", in.Source, in.Via)
	}
	// C2 first: once C1 pulls from the origin, it is C2's nearest source.
	for _, n := range []*testNode{c2, c1} {
		if err := firstPacket(t.Context(), n.url("o/live")); err != nil {
			t.Fatal(err)
		}
	}
	if in, _ := c1.Stream("o/live"); in.Source != "origin" {
		t.Errorf("C1 (live_max_hops 1) relays from %q, want the origin", in.Source)
	}
	in, _ := c2.Stream("o/live")
	if in.Source != b.PeerID() || !slices.Equal(in.Via, []string{a.PeerID(), b.PeerID()}) {
		t.Errorf("C2 (live_max_hops 2): source %q via %v, want B via [A B]", in.Source, in.Via)
	}
	if _, plays := org.Sessions("live"); plays != 2 {
		t.Errorf("origin sessions: %d, want 2 (A and C1)", plays)
	}
}
