package node_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// TestLiveMaxHops: A pulls a live stream from the origin and refuses C1 and
// C2 (an allow-list); B relays it from A. C1 (mesh.live_max_hops 1) must not
// relay from B, two hops from the origin, and goes to the origin; C2
// (live_max_hops 2) relays from B, or from C1 when C1 is the stream's
// designated filler among the Cs.
func TestLiveMaxHops(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
		for i := range 40 {
			c.Live[fmt.Sprintf("live%d", i)] = origin.SampleClip()
		}
	})
	b := meshNode(t, org, nil)
	hops := func(n int) func(*node.Config) { return func(c *node.Config) { c.Mesh.LiveMaxHops = n } }
	c1 := meshNode(t, org, hops(1), b)
	c2 := meshNode(t, org, hops(2), b)
	a := meshNode(t, org, func(c *node.Config) { c.Mesh.AllowPeers = []string{b.PeerID()} }, b)
	testkit.Eventually(t, 10*time.Second, "A joined B", func() bool { return len(a.Peers()) > 0 })
	// A stream whose designated filler is A for A and B (A pulls from the
	// origin, B relays from it). The Cs cannot reach A: if C1 is their
	// filler, C2 relays from C1 (which pulls from the origin), else from B.
	waitMembers(t, []*testNode{a}, 2)
	waitMembers(t, []*testNode{b}, 4)
	waitMembers(t, []*testNode{c1, c2}, 3)
	path := ""
	for i := -1; i < 40 && path == ""; i++ {
		p := "o/live"
		if i >= 0 {
			p = fmt.Sprintf("o/live%d", i)
		}
		if fillerIs(t, org, []*testNode{a, b, c1, c2}, a, p) {
			path = p
		}
	}
	if path == "" {
		t.Fatal("no stream whose filler is A")
	}
	c2From, c2Via := b.PeerID(), []string{a.PeerID(), b.PeerID()}
	if fillerIs(t, org, []*testNode{b, c1, c2}, c1, path) {
		c2From, c2Via = c1.PeerID(), []string{c1.PeerID()}
	}

	for _, n := range []*testNode{a, b} {
		if err := firstPacket(t.Context(), n.url(path)); err != nil {
			t.Fatal(err)
		}
	}
	if in, _ := b.Stream(path); in.Source != a.PeerID() || !slices.Equal(in.Via, []string{a.PeerID()}) {
		t.Fatalf("B: source %q via %v, want A via [A]", in.Source, in.Via)
	}
	// C2 first: once C1 pulls from the origin, it is C2's nearest source.
	for _, n := range []*testNode{c2, c1} {
		if err := firstPacket(t.Context(), n.url(path)); err != nil {
			t.Fatal(err)
		}
	}
	if in, _ := c1.Stream(path); in.Source != "origin" {
		t.Errorf("C1 (live_max_hops 1) relays from %q, want the origin", in.Source)
	}
	in, _ := c2.Stream(path)
	if in.Source != c2From || !slices.Equal(in.Via, c2Via) {
		t.Errorf("C2 (live_max_hops 2): source %q via %v, want %s via %v", in.Source, in.Via, c2From, c2Via)
	}
	if _, plays := org.Sessions(strings.TrimPrefix(path, "o/")); plays != 2 {
		t.Errorf("origin sessions: %d, want 2 (A and C1)", plays)
	}
}
