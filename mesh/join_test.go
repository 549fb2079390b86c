package mesh

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

// TestJoinAtOnceThroughOneBootstrap: two nodes that join through the same
// bootstrap peer at the same moment find each other within seconds (the
// demo's B and C), not at the DHT's next refresh minutes later: each
// node's first walk of the DHT may come before the bootstrap peer knows
// the other.
func TestJoinAtOnceThroughOneBootstrap(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{}, nil)
	var (
		wg   sync.WaitGroup
		b, c *testNode
	)
	wg.Go(func() { b = startNode(t, Config{Bootstrap: a.Addrs()}, nil) })
	wg.Go(func() { c = startNode(t, Config{Bootstrap: a.Addrs()}, nil) })
	wg.Wait()
	start := time.Now()
	testkit.Eventually(t, 20*time.Second, "the two joiners connected to each other", func() bool {
		return b.host.Network().Connectedness(c.host.ID()) == network.Connected
	})
	t.Logf("the joiners found each other %v after starting", time.Since(start).Round(time.Millisecond))
}
