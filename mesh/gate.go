package mesh

import (
	"context"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// gate is the host's connection gater: Config.AllowPeers when set, and the
// peers Block cuts off.
type gate struct {
	allow *allowGater // nil: every peer

	mu      sync.Mutex
	blocked map[peer.ID]bool
}

var _ connmgr.ConnectionGater = (*gate)(nil)

func (g *gate) admits(p peer.ID) bool {
	if g.allow != nil && !g.allow.allow[p] {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.blocked[p]
}

func (g *gate) InterceptPeerDial(p peer.ID) bool { return g.admits(p) }

func (g *gate) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.admits(p) }

func (g *gate) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.admits(p)
}

func (g *gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// Block cuts this node off from peer id, or lets it back: a blocked peer's
// connections are closed and refused in both directions until Block(id,
// false). It is how a test makes a partition (and how an operator could
// shun a misbehaving node until a restart).
func (m *Mesh) Block(id string, blocked bool) error {
	p, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("block %q: %w", id, err)
	}
	m.gate.mu.Lock()
	if blocked {
		m.gate.blocked[p] = true
	} else {
		delete(m.gate.blocked, p)
	}
	m.gate.mu.Unlock()
	if blocked {
		_ = m.host.Network().ClosePeer(p)
	} else if sw, ok := m.host.Network().(*swarm.Swarm); ok {
		// Dials refused while blocked left the peer in the swarm's dial
		// backoff (5 s and growing): without clearing it, the first dial
		// after unblocking fails with "dial backoff".
		sw.Backoff().Clear(p)
	}
	return nil
}

// Connect dials the peer at addr, a full multiaddr ending in /p2p/<id>,
// and returns once it is connected.
func (m *Mesh) Connect(ctx context.Context, addr string) error {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return fmt.Errorf("connect %q: %w", addr, err)
	}
	if err := m.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("connect %s: %w", ai.ID, err)
	}
	return nil
}
