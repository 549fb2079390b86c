package node

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/rtspmesh/rtspmesh/node/fill"
)

// Designated fillers and origin session budgets (issue 16; DESIGN.md §11).
// The rule and the filler protocol are package mesh's; which fill a request
// starts is package fill's. The node maps a key asked for by a neighbour
// back to one of its configured origins (only those are ever dialed), and
// holds a max_sessions budget per origin.

// maxFillerReach bounds mesh.filler_reach: past it a dead filler would hold
// players up longer than an origin session takes to open.
const maxFillerReach = 30 * time.Second

func validateFillerReach(bad complain, m MeshConfig) {
	if m.FillerReach <= 0 || m.FillerReach > Duration(maxFillerReach) {
		bad("mesh.filler_reach", "%s is out of range; write a duration from 1ms to %s (default %s)",
			m.FillerReach, Duration(maxFillerReach), Duration(fill.DefaultFillerReach))
	}
}

func validateMaxSessions(bad complain, key string, o Origin) {
	if o.MaxSessions < 0 {
		bad(key+".max_sessions", "%d is negative; write 0 (unlimited) or the sessions the origin accepts, e.g. 1 for a camera", o.MaxSessions)
	}
}

// dialableOrigin maps a stream key back to the configured origin that makes
// it and the URL to dial (with credentials): the origin whose URL the key
// extends, when mapping the same path gives the same key. ok is false for
// a key no configured origin serves: a neighbour cannot make this node
// dial it.
func dialableOrigin(origins []Origin, key string) (o *Origin, originURL string, ok bool) {
	for i := range origins {
		base, err := CanonicalKey(origins[i].URL)
		if err != nil {
			continue
		}
		base = strings.TrimSuffix(base, "/") + "/"
		rest, found := strings.CutPrefix(key, base)
		if !found || rest == "" {
			continue
		}
		o, u, k, err := mapPath(origins, origins[i].Name+"/"+rest)
		if err == nil && k == key {
			return o, u, true
		}
	}
	return nil, "", false
}

// errNotConfigured: a neighbour asked this node to fill a key of an origin
// it does not have.
var errNotConfigured = errors.New("no configured origin serves the stream")

// budgets are the origins' max_sessions budgets by origin name.
func newBudgets(origins []Origin) map[string]*fill.Budget {
	b := make(map[string]*fill.Budget, len(origins))
	for _, o := range origins {
		b[o.Name] = fill.NewBudget(o.MaxSessions)
	}
	return b
}

// budget is the max_sessions budget of key's origin (fill.Config.Budget).
func (n *Node) budget(key string) *fill.Budget {
	if o, _, ok := dialableOrigin(n.cfg.Origins, key); ok {
		return n.budgets[o.Name]
	}
	return nil
}

// configured says whether key's origin is configured here
// (mesh.Config.Configured).
func (n *Node) configured(key string) bool {
	_, _, ok := dialableOrigin(n.cfg.Origins, key)
	return ok
}

// fillFor starts or joins this node's fill of key for a neighbour that
// chose it as the stream's filler (mesh.Config.StartFill), and holds it
// until release; as a prefetch's hold while nobody plays the stream at the
// neighbour (unwatched, and watch's word after it), so the fill may pull
// ranges at once.
func (n *Node) fillFor(ctx context.Context, key string, unwatched bool) (release func(), watch func(unwatched bool), err error) {
	o, originURL, ok := dialableOrigin(n.cfg.Origins, key)
	if !ok {
		return nil, nil, errNotConfigured
	}
	// The node's fills stop before its mesh does: a request that arrives
	// meanwhile must not wait for a fill that never starts.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.fillersCtx, cancel)()
	req := n.fillRequest(o, originURL, key, "")
	req.Prefetch = unwatched
	rec, err := n.fills.Open(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return rec.Release, rec.SetPrefetch, nil
}

// FillerOf says which node fills key from its origin, and why (admin API,
// dashboard): the choice of this node's last fill of key, else the rule's
// as this node sees the mesh now.
func (n *Node) FillerOf(key string) fill.FillerInfo {
	if n.mesh == nil {
		return fill.FillerInfo{}
	}
	if fi, ok := n.fills.LastFiller(key); ok {
		return fi
	}
	fl := n.mesh.Filler(key, nil)
	return fill.FillerInfo{ID: fl.ID, Why: fill.ClosestWhy(fl.Known)}
}
