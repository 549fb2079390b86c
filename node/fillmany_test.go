package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestManyFillsFromOnePeer: node A holds 12 complete recordings; node B,
// with fills.max_concurrent 12, prefetches them all at once, each through
// a 50 Mbit/s cap on fills from A (mesh.rate_limit) so that all 12 fills
// run at the same time. Every recording comes from A, none from the
// origin: libp2p's default resource manager let about 6 fills from one
// peer reserve their buffers, and sent the others to the origin.
func TestManyFillsFromOnePeer(t *testing.T) {
	t.Parallel()
	const n = 12
	paths := make([]string, n)
	media := map[string][]byte{}
	for i := range paths {
		name := fmt.Sprintf("clip%02d.ts", i)
		media[name] = origin.SampleClip()
		paths[i] = "o/" + name
	}
	org := startOrigin(t, func(c *origin.Config) { c.Media = media })
	mod := func(c *node.Config) {
		c.Admin.Listen = "127.0.0.1:0"
		c.Fills.MaxConcurrent = n
		c.Fills.MaxPerClient = n
		c.Mesh.RateLimit = 50_000_000
	}
	a := meshNode(t, org, mod)
	for _, p := range paths {
		startPrefetch(t, a, p)
	}
	allComplete(t, a, paths)
	b := meshNode(t, org, mod, a)
	for _, p := range paths {
		startPrefetch(t, b, p)
	}
	allComplete(t, b, paths)
	for i, p := range paths {
		in, err := b.Stream(p)
		if err != nil {
			t.Fatal(err)
		}
		if in.Source != a.PeerID() {
			t.Errorf("B's %s came from %q, want A", p, in.Source)
		}
		if _, plays := org.Sessions(fmt.Sprintf("clip%02d.ts", i)); plays != 1 {
			t.Errorf("origin plays of %s: %d, want 1 (A's fill)", p, plays)
		}
		want, _ := a.Stream(p)
		if in.Bytes != want.Bytes || in.Packets != want.Packets || in.Bytes == 0 {
			t.Errorf("B's %s: %d bytes %d packets, A's %d bytes %d packets", p, in.Bytes, in.Packets, want.Bytes, want.Packets)
		}
	}
}

// allComplete waits until n holds every path complete.
func allComplete(t *testing.T, n *testNode, paths []string) {
	t.Helper()
	testkit.Eventually(t, 2*time.Minute, "every prefetch complete", func() bool {
		for _, p := range paths {
			if in, err := n.Stream(p); err != nil || in.State != store.StateComplete {
				return false
			}
		}
		return true
	})
}
