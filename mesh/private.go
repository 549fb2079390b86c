package mesh

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
)

// GenerateKey writes a new pre-shared key for a private mesh to w, in the
// standard libp2p swarm key format (/key/swarm/psk/1.0.0/, base16). Every node
// of the mesh gets a copy of the file (Config.PSKFile); keep it secret.
func GenerateKey(w io.Writer) error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("generate psk: %w", err)
	}
	if _, err := fmt.Fprintf(w, "/key/swarm/psk/1.0.0/\n/base16/\n%s\n", hex.EncodeToString(k[:])); err != nil {
		return fmt.Errorf("write psk: %w", err)
	}
	return nil
}

// loadPSK reads a key file written by GenerateKey. The key itself never
// appears in an error.
func loadPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("psk file: %w", err)
	}
	defer f.Close()
	psk, err := pnet.DecodeV1PSK(f)
	if err != nil {
		return nil, fmt.Errorf("psk file %s: not a /key/swarm/psk/1.0.0/ key", path)
	}
	return psk, nil
}

// allowGater is a connection gater that admits only the listed peers, in
// both directions. Address-level checks are left to the transports.
type allowGater struct {
	allow map[peer.ID]bool
}

var _ connmgr.ConnectionGater = (*allowGater)(nil)

func newAllowGater(ids []string) (*allowGater, error) {
	g := &allowGater{allow: make(map[peer.ID]bool, len(ids))}
	for _, s := range ids {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("allow peer %q: %w", s, err)
		}
		g.allow[id] = true
	}
	return g, nil
}

func (g *allowGater) InterceptPeerDial(p peer.ID) bool { return g.allow[p] }

func (g *allowGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allow[p] }

func (g *allowGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *allowGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allow[p]
}

func (g *allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
