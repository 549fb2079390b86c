package node

import (
	"context"
	"sync"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/store"
)

// The mesh view of the admin API: what each peer holds, learnt with the
// mesh's catalogue protocol (mesh/doc.go) when GET /api/v1/peers is asked,
// and kept a few seconds so a dashboard's refreshes do not ask again.

const (
	// catalogueFresh is how long a peer's answer is used before it is
	// asked again.
	catalogueFresh = 3 * time.Second
	// catalogueWait bounds how long a GET /api/v1/peers waits for answers.
	catalogueWait = 2 * time.Second
	// catalogueAsk is how many peers one GET /api/v1/peers asks at most,
	// and how many at once (lowest ids first): the page stays bounded in a
	// large mesh.
	catalogueAsk      = 32
	catalogueParallel = 8
)

// PeerStream is one recording a peer holds, as GET /api/v1/peers shows it.
type PeerStream struct {
	ID         string  `json:"id"`   // stream id (SHA-256 of the key)
	Key        string  `json:"key"`  // canonical origin URL
	Path       string  `json:"path"` // its path on this node; "" when no origin here maps to it
	State      string  `json:"state"`
	Live       bool    `json:"live"`
	Source     string  `json:"source"`      // "origin", the peer id it came from, or ""
	SourceKind string  `json:"source_kind"` // "origin", "peer" or ""
	Bytes      uint64  `json:"bytes"`
	Duration   float64 `json:"duration_seconds"`
}

// catalogues caches peers' answers. The zero value is ready.
type catalogues struct {
	mu   sync.Mutex
	byID map[string]catalogueAnswer
}

type catalogueAnswer struct {
	at  time.Time
	c   mesh.Catalogue
	err error
}

// fill sets Holds (or CatalogueError) of each of ps, asking the peers whose
// answer is older than catalogueFresh, at most catalogueAsk of them, and
// forgets peers that are gone.
func (cs *catalogues) fill(ctx context.Context, a *adminServer, ps []PeerStatus) {
	if a.n.mesh == nil || len(ps) == 0 {
		return
	}
	now := time.Now()
	cs.mu.Lock()
	connected := make(map[string]bool, len(ps))
	var stale []string
	for i, p := range ps {
		connected[p.ID] = true
		if ans, ok := cs.byID[p.ID]; i < catalogueAsk && (!ok || now.Sub(ans.at) > catalogueFresh) {
			stale = append(stale, p.ID)
		}
	}
	for id := range cs.byID {
		if !connected[id] {
			delete(cs.byID, id)
		}
	}
	cs.mu.Unlock()

	if len(stale) > 0 {
		asked := ctx
		ctx, cancel := context.WithTimeout(ctx, catalogueWait)
		defer cancel()
		slots := make(chan struct{}, catalogueParallel)
		var wg sync.WaitGroup
		for _, id := range stale {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				c, err := a.n.mesh.Catalogue(ctx, id)
				if err != nil && asked.Err() != nil {
					return // the request went away: not the peer's answer
				}
				if err != nil {
					a.log.Debug("peer catalogue", "peer", id, "err", err)
				}
				cs.mu.Lock()
				if cs.byID == nil {
					cs.byID = make(map[string]catalogueAnswer)
				}
				cs.byID[id] = catalogueAnswer{at: time.Now(), c: c, err: err}
				cs.mu.Unlock()
			})
		}
		wg.Wait()
	}

	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i := range ps {
		ans, ok := cs.byID[ps[i].ID]
		switch {
		case !ok && i >= catalogueAsk:
			ps[i].CatalogueError = "not asked: more peers than one request asks"
		case !ok:
			ps[i].CatalogueError = "not asked yet"
		case ans.err != nil:
			ps[i].CatalogueError = ans.err.Error()
		default:
			ps[i].Holds = make([]PeerStream, 0, len(ans.c.Entries))
			for _, e := range ans.c.Entries {
				ps[i].Holds = append(ps[i].Holds, PeerStream{
					ID: store.StreamID(e.Key), Key: e.Key, Path: a.pathOf(e.Key), State: string(e.State), Live: e.Live,
					Source: e.Source, SourceKind: sourceKind(e.Source), Bytes: e.Bytes, Duration: e.Duration.Seconds(),
				})
			}
			ps[i].HoldsTruncated = ans.c.Truncated
		}
	}
}
