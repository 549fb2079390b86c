package mesh

import (
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

func TestMDNSFindsNeighbour(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{MDNS: true, Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, nil)
	b := startNode(t, Config{MDNS: true, Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, nil)
	testkit.Eventually(t, 20*time.Second, "mDNS neighbours to connect", func() bool {
		return len(a.host.Network().ConnsToPeer(b.host.ID())) > 0
	})
}
