package node

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/store"
)

// liveProbes bounds how many providers of a live stream a node asks before
// it settles for the one with the fewest relay hops.
const liveProbes = 3

// fillFromPeers fills f from the mesh's providers of f.key. When a peer's
// fill stops part-way it looks the key up again (a live stream's relays
// change as nodes come and go) and goes on from the writer's last segment,
// or for a live stream from the new source's live edge, at the next peer it
// has not given up on. It returns the writer (nil if no peer ever answered)
// and whether the recording is complete.
func (n *Node) fillFromPeers(ctx context.Context, f *fill, w *store.Writer, log *slog.Logger) (*store.Writer, bool) {
	gaveUp := make(map[string]bool)
	waited := false
	for ctx.Err() == nil {
		pf, busy := n.pickPeer(ctx, f, w, gaveUp, log)
		if pf == nil && busy && !waited {
			// Every relay left is between sources too (their source died
			// with ours). Rather than all going to the origin at once, wait
			// a random moment: the first to go on pulls from the origin and
			// the others can relay from it.
			waited = true
			if sleepCtx(ctx, time.Duration(rand.Int64N(int64(relayBackoff)))) == nil {
				continue
			}
		}
		if pf == nil {
			return w, false
		}
		gaveUp[pf.Peer()] = true
		pm := pf.Manifest()
		via := append(slices.Clone(pm.Via), pf.Peer())
		if w == nil {
			// A live stream is relayed from a neighbour that pulls it: its
			// window, then its packets as it stores them.
			n.fills.mu.Lock()
			f.live = pm.Live
			n.fills.mu.Unlock()
			m := emptyCopy(pm, f.key, pf.Peer())
			if pm.Live {
				m.Via = via
			}
			st := n.store
			if !st.Storing() {
				st = n.relay // no space (cache.min_free, the quota): relay without storing
				_ = st.Delete(f.key)
			}
			var err error
			if w, err = st.Create(m); err != nil {
				pf.Close()
				log.Error("create recording", "err", err)
				return nil, false
			}
			f.setReady(st)
			if st == n.store {
				n.provide(ctx, f.key)
			}
		} else {
			_ = w.Update(func(m *store.Manifest) {
				m.Source = pf.Peer()
				if m.Live {
					m.Via = via
				}
			})
		}
		if pm.Live {
			log.Info("fill start", "source", "peer", "peer", pf.Peer(), "live", true, "hops", len(via))
		} else {
			log.Info("fill start", "source", "peer", "peer", pf.Peer(), "live", false)
		}
		before := bytesOf(w)
		err := pf.Run(ctx, w)
		n.metrics.filled(f, "peer", before, w)
		pf.Close()
		if err == nil {
			return w, true
		}
		if ctx.Err() != nil {
			// Stopped on purpose (no players left, the node stops): runFill
			// says so; there is no next source to try.
			log.Debug("peer fill stopped", "peer", pf.Peer(), "why", context.Cause(ctx))
			return w, false
		}
		log.Warn("peer fill stopped; trying the next source", "peer", pf.Peer(), "err", err)
		if w.Manifest().Live {
			// Between sources: refuse relays until the next one is chosen,
			// so two nodes that lost their source at once do not pick each
			// other.
			_ = w.Update(func(m *store.Manifest) { m.Source, m.Via = "", nil })
		}
	}
	return w, false
}

// pickPeer looks f.key up and opens a fill from the first provider that
// answers, except those in gaveUp. For a live stream it skips providers that
// relay from this node (a loop) or sit mesh.live_max_hops deep already, and
// among the first liveProbes that qualify (nearest first) takes the one with
// the fewest hops. Nil when no provider will do; busy when a provider of a
// live stream was between sources itself.
func (n *Node) pickPeer(ctx context.Context, f *fill, w *store.Writer, gaveUp map[string]bool, log *slog.Logger) (_ *mesh.PeerFill, busy bool) {
	lookup := time.Now()
	provs, err := n.mesh.FindProviders(ctx, f.key)
	n.metrics.dhtLookup(time.Since(lookup), len(provs), err)
	n.admin.lookedUp(f.key, providerIDs(provs))
	if err != nil || len(provs) == 0 {
		log.Debug("no providers in the mesh", "err", err)
		return nil, false
	}
	from, live := uint32(0), false
	if w != nil {
		m := w.Manifest()
		from, live = nextSegment(m), m.Live
		if _, _, held := w.Last(); m.Live && held {
			from = mesh.FromLiveEdge // its segments number differently
		}
	}
	self := n.mesh.ID()
	var best *mesh.PeerFill
	probes := 0
	for _, p := range provs {
		if gaveUp[p.ID] || probes >= liveProbes {
			continue
		}
		pf, err := n.mesh.OpenFill(ctx, p, f.key, from)
		if err != nil {
			log.Info("provider refused", "peer", p.ID, "err", err)
			if live && errors.Is(err, mesh.ErrUnavailable) {
				busy = true // may be back in a moment
			} else {
				gaveUp[p.ID] = true
			}
			continue
		}
		m := pf.Manifest()
		if !m.Live {
			return pf, false // VOD: the nearest provider that answers
		}
		hops := len(m.Via) + 1
		switch {
		case slices.Contains(m.Via, self):
			log.Debug("provider relays from this node", "peer", p.ID)
			pf.Close()
			continue
		case hops > n.cfg.Mesh.LiveMaxHops:
			log.Info("provider is too many relay hops from the origin", "peer", p.ID, "hops", hops, "live_max_hops", n.cfg.Mesh.LiveMaxHops)
			pf.Close()
			continue
		}
		probes++
		if best == nil || hops < len(best.Manifest().Via)+1 {
			if best != nil {
				best.Close()
			}
			best = pf
		} else {
			pf.Close()
		}
		if hops == 1 {
			break // it pulls from the origin: none is nearer
		}
	}
	return best, busy
}

// relayBackoff bounds the random wait of a live relay that found every
// other relay between sources.
const relayBackoff = 500 * time.Millisecond

// sleepCtx waits d or until ctx ends, and returns ctx's error.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// servingLive counts a neighbour that relays key from this node as a player
// of the node's live fill of it, so the upstream stays open (no linger)
// while any neighbour relays it. It is mesh.Config.ServingLive.
func (n *Node) servingLive(key string) (done func()) {
	n.fills.mu.Lock()
	f := n.fills.m[key]
	if f == nil || !f.live {
		n.fills.mu.Unlock()
		return func() {}
	}
	f.joinLocked()
	n.fills.mu.Unlock()
	return func() { n.release(f) }
}
