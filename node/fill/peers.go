package fill

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/store"
)

// liveProbes bounds how many providers of a live stream a fill asks before
// it settles for the one with the fewest relay hops.
const liveProbes = 3

// relayBackoff bounds the random wait of a live relay that found every
// other relay between sources.
const relayBackoff = 500 * time.Millisecond

// peers is the mesh's providers of one fill's key as a source. Each next
// looks the key up again (a live stream's relays change as nodes come and
// go) and goes on from the writer's last segment, or for a live stream from
// the new provider's live edge, at the next provider it has not given up on.
type peers struct {
	fs     *Fills
	f      *fill
	gaveUp map[string]bool
	waited bool
}

func newPeers(fs *Fills, f *fill) *peers {
	return &peers{fs: fs, f: f, gaveUp: make(map[string]bool)}
}

func (*peers) name() string { return "peer" }

func (p *peers) next(ctx context.Context, w *store.Writer) (Upstream, error) {
	for ctx.Err() == nil {
		pf, busy := p.pick(ctx, w)
		if pf == nil && busy && !p.waited {
			// Every relay left is between sources too (their source died
			// with ours). Rather than all going to the origin at once, wait
			// a random moment: the first to go on pulls from the origin and
			// the others can relay from it.
			p.waited = true
			if sleepCtx(ctx, time.Duration(rand.Int64N(int64(relayBackoff)))) == nil {
				continue
			}
		}
		if pf == nil {
			return nil, nil
		}
		p.gaveUp[pf.Peer()] = true
		return peerUpstream{pf}, nil
	}
	return nil, ctx.Err()
}

// pick looks the key up and opens a fill from the first provider that
// answers, except those given up on (ask). For a live stream it skips
// providers that relay from this node (a loop) or sit mesh.live_max_hops
// deep already, and among the first liveProbes that qualify takes the one
// with the fewest hops. Nil when no provider will do; busy when a provider
// of a live stream was between sources itself.
func (p *peers) pick(ctx context.Context, w *store.Writer) (_ *mesh.PeerFill, busy bool) {
	msh, key, log := p.fs.cfg.Mesh, p.f.key, p.fs.log.With("stream", p.f.key)
	lookup := time.Now()
	provs, err := msh.FindProviders(ctx, key)
	if h := p.fs.cfg.Hooks.LookedUp; h != nil {
		h(key, providerIDs(provs), time.Since(lookup), err)
	}
	if err != nil || len(provs) == 0 {
		log.Debug("no providers in the mesh", "err", err)
		return nil, false
	}
	from, live := uint32(0), false
	if w != nil {
		m := w.Manifest()
		from, live = m.NextSegment(), m.Live
		if _, _, held := w.Last(); m.Live && held {
			from = mesh.FromLiveEdge // its segments number differently
		}
	}
	return p.ask(ctx, provs, from, live)
}

// parallelAsks is how many providers a miss asks at once, nearest first;
// another is asked each time one fails.
const parallelAsks = 3

// opened is one provider's answer.
type opened struct {
	id  string
	pf  *mesh.PeerFill
	err error
}

// ask opens fills from provs (nearest first) parallelAsks at a time, all
// within mesh.AnswerBound, and keeps the first on-demand answer, or for a
// live stream the one with the fewest relay hops among the first
// liveProbes that qualify. The others are closed before it returns.
func (p *peers) ask(ctx context.Context, provs []mesh.Provider, from uint32, live bool) (best *mesh.PeerFill, busy bool) {
	msh, key, log := p.fs.cfg.Mesh, p.f.key, p.fs.log.With("stream", p.f.key)
	phase, cancel := context.WithTimeout(ctx, msh.AnswerBound())
	defer cancel()
	answers := make(chan opened, len(provs))
	var wg sync.WaitGroup
	next, inflight := 0, 0
	launch := func() {
		for ; next < len(provs) && inflight < parallelAsks; next++ {
			pv := provs[next]
			if p.gaveUp[pv.ID] {
				continue
			}
			inflight++
			wg.Go(func() {
				pf, err := msh.OpenFill(phase, pv, key, from)
				answers <- opened{pv.ID, pf, err}
			})
		}
	}
	self := msh.ID()
	probes, done := 0, false
	for launch(); inflight > 0; launch() {
		a := <-answers
		inflight--
		switch {
		case done:
			if a.pf != nil {
				a.pf.Close()
			}
			continue
		case a.err != nil:
			if phase.Err() != nil && ctx.Err() == nil {
				log.Info("provider did not answer in time", "peer", a.id, "bound", msh.AnswerBound())
			} else {
				log.Info("provider refused", "peer", a.id, "err", a.err)
			}
			if live && errors.Is(a.err, mesh.ErrUnavailable) {
				busy = true // may be back in a moment
			} else {
				p.gaveUp[a.id] = true
			}
			continue
		}
		m := a.pf.Manifest()
		if !m.Live {
			best, done = a.pf, true // VOD: the first provider that answers
			cancel()
			next = len(provs)
			continue
		}
		hops := len(m.Via) + 1
		switch {
		case slices.Contains(m.Via, self):
			log.Debug("provider relays from this node", "peer", a.id)
			a.pf.Close()
			continue
		case hops > p.fs.cfg.LiveMaxHops:
			log.Info("provider is too many relay hops from the origin", "peer", a.id, "hops", hops, "live_max_hops", p.fs.cfg.LiveMaxHops)
			a.pf.Close()
			continue
		}
		probes++
		if best == nil || hops < len(best.Manifest().Via)+1 {
			if best != nil {
				best.Close()
			}
			best = a.pf
		} else {
			a.pf.Close()
		}
		if hops == 1 || probes >= liveProbes {
			done = true // it pulls from the origin: none is nearer
			cancel()
			next = len(provs)
		}
	}
	wg.Wait()
	return best, busy
}

// peerUpstream is a fill from one peer.
type peerUpstream struct{ *mesh.PeerFill }

// Manifest is the peer's, with the peer as Source; a live stream's relay
// chain is the peer's chain and the peer.
func (u peerUpstream) Manifest() store.Manifest {
	m := u.PeerFill.Manifest()
	if m.Live {
		m.Via = append(slices.Clone(m.Via), u.Peer())
	} else {
		m.Via = nil
	}
	return m
}

// Cacheable: a peer only serves what it keeps.
func (peerUpstream) Cacheable() bool { return true }

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

func providerIDs(ps []mesh.Provider) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}
