package mesh

// This file belongs to the operations side (node's admin API and metrics):
// read-only views of the mesh for the admin API and Prometheus.

import (
	"time"
)

// PeerInfo is a peer this node is connected to.
type PeerInfo struct {
	ID    string
	Addrs []string      // multiaddrs it is connected on
	RTT   time.Duration // libp2p's moving average; 0 when not measured yet
}

// Peers lists the peers connected now.
func (m *Mesh) Peers() []PeerInfo {
	ids := m.host.Network().Peers()
	out := make([]PeerInfo, 0, len(ids))
	for _, id := range ids {
		p := PeerInfo{ID: id.String(), RTT: m.host.Peerstore().LatencyEWMA(id)}
		for _, c := range m.host.Network().ConnsToPeer(id) {
			p.Addrs = append(p.Addrs, c.RemoteMultiaddr().String())
		}
		out = append(out, p)
	}
	return out
}

// Stats are the mesh's counters since it started.
type Stats struct {
	Serving      int64  // fills being served to peers now
	FillBytesIn  uint64 // fill-protocol segment bytes received from peers
	FillBytesOut uint64 // fill-protocol segment bytes sent to peers
}

// Stats reports the counters; safe to call at any time.
func (m *Mesh) Stats() Stats {
	return Stats{Serving: m.serving.Load(), FillBytesIn: m.bytesIn.Load(), FillBytesOut: m.bytesOut.Load()}
}
