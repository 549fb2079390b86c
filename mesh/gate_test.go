package mesh

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

// TestBlockUnblockReconnects: a peer can be dialled again as soon as it is
// unblocked. Dials that failed while it was blocked put its addresses in
// the swarm's dial backoff (5 s and growing); which dials fail depends on
// timing (the dialler's handshake may complete before the other side's
// gater refuses it), so the test puts them there itself.
func TestBlockUnblockReconnects(t *testing.T) {
	t.Parallel()
	nodes := startMesh(t, 2, Config{})
	a, b := nodes[0], nodes[1]
	if err := b.Block(a.host.ID().String(), true); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "a and b disconnected", func() bool {
		return b.host.Network().Connectedness(a.host.ID()) != network.Connected &&
			a.host.Network().Connectedness(b.host.ID()) != network.Connected
	})
	for _, addr := range a.host.Addrs() {
		b.host.Network().(*swarm.Swarm).Backoff().AddBackoff(a.host.ID(), addr)
	}
	if err := b.Block(a.host.ID().String(), false); err != nil {
		t.Fatal(err)
	}
	if err := connect(t.Context(), b, a); err != nil {
		t.Fatalf("after unblocking: %v", err)
	}
}
