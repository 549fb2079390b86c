package node

import (
	"context"
	"strings"
	"time"

	"github.com/rtspmesh/rtspmesh/node/fill"
	"github.com/rtspmesh/rtspmesh/rtspedge"
)

// Served says where a player's stream came from when it asked.
type Served = fill.Served

// Where a stream was served from.
const (
	ServedLocal  = fill.ServedLocal  // a complete recording in this node's store
	ServedTail   = fill.ServedTail   // a fill already running on this node
	ServedPeer   = fill.ServedPeer   // a new fill from a neighbour
	ServedOrigin = fill.ServedOrigin // a new fill from the origin
)

// session is a player's recording: what the fill registry resolved, plus
// the player's session-end log line.
type session struct {
	*fill.Recording
	n      *Node
	opened time.Time
}

// Delivered counts what the player was sent (rtspedge.DeliveryCounter).
func (s *session) Delivered(packets, bytes uint64) { s.n.metrics.delivered(s.Served(), bytes) }

func (s *session) Close() {
	s.n.log.Info("player session end", "stream", s.Key(), "served", s.Served(),
		"duration", time.Since(s.opened).Round(time.Millisecond))
	s.Release()
}

// Open resolves a player's request path to a recording it can read:
// a complete local recording, else the fill in progress for the key, else a
// new fill (peers first, then the origin). It implements rtspedge.Recordings.
//
// The client in ctx (rtspedge.ClientFrom) is held to the fills.* bounds:
// requests per second per connection and per address, fills at once in all
// and per address. Over one, Open returns an rtspedge.LimitError.
func (n *Node) Open(ctx context.Context, path string) (rtspedge.Recording, error) {
	client, _ := rtspedge.ClientFrom(ctx)
	if err := n.rates.allow(client, time.Now()); err != nil {
		n.metrics.refused(err)
		return nil, err // rtspedge logs the refusal
	}
	origin, originURL, key, err := mapPath(n.cfg.Origins, path)
	if err != nil {
		n.metrics.requestFailed()
		return nil, err
	}
	rec, err := n.fills.Open(ctx, n.fillRequest(origin, originURL, key, client.Addr))
	if n.metrics.refused(err) {
		return nil, err
	}
	if err != nil {
		n.metrics.requestFailed()
		n.log.Debug("player request failed", "stream", key, "err", err) // rtspedge logs the refusal
		return nil, err
	}
	n.metrics.request(rec.Served())
	n.log.Info("player session start", "stream", key, "served", rec.Served(), "source", rec.Manifest().Source)
	return &session{Recording: rec, n: n, opened: time.Now()}, nil
}

// provide announces key in the mesh without holding up the fill.
func (n *Node) provide(ctx context.Context, key string) {
	if n.mesh == nil {
		return
	}
	n.background(ctx, func(ctx context.Context) {
		if err := n.mesh.Provide(ctx, key); err != nil {
			n.log.Info("provide failed; the re-provide loop will retry", "stream", key, "err", err)
		}
	})
}

var (
	_ rtspedge.Recordings      = (*Node)(nil)
	_ rtspedge.DeliveryCounter = (*session)(nil)
)

// peersTrustedOnly reports whether key's recording goes only to peers that
// are trusted signers: key belongs to an origin whose peer_access is
// "trusted" (by default, one with credentials).
func (n *Node) peersTrustedOnly(key string) bool {
	for _, o := range n.cfg.Origins {
		if !o.peersTrustedOnly() {
			continue
		}
		base, err := CanonicalKey(o.URL)
		if err != nil {
			continue
		}
		if base = strings.TrimSuffix(base, "/"); key == base || strings.HasPrefix(key, base+"/") {
			return true
		}
	}
	return false
}
