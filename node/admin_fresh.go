package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtspmesh/rtspmesh/node/fill"
	"github.com/rtspmesh/rtspmesh/store"
)

// FreshnessStatus is a recording's freshness as the admin API shows it
// (StreamStatus.Freshness, docs/api.md): by the policy of its origin.
type FreshnessStatus struct {
	// State is "fresh", "stale" (revalidated with the origin at the next
	// play), "revalidating" (a revalidation is under way) or "live" (never
	// stored beyond its window, never revalidated).
	State        string    `json:"state"`
	FreshUntil   time.Time `json:"fresh_until,omitzero"`
	FetchedAt    time.Time `json:"fetched_at,omitzero"` // fetched or last revalidated
	LastModified string    `json:"last_modified,omitempty"`
	CacheControl string    `json:"cache_control,omitempty"` // the origin's
	Expires      string    `json:"expires,omitempty"`
}

// FreshnessCounts are the node's revalidations since start (NodeStatus).
type FreshnessCounts struct {
	Revalidations uint64 `json:"revalidations"`
	NotModified   uint64 `json:"not_modified"` // 304
	Unchanged     uint64 `json:"unchanged"`    // 200 with the same description
	Changed       uint64 `json:"changed"`      // a new recording replaced the old one
	ServedStale   uint64 `json:"served_stale"` // origin unreachable: served stale (stale_if_error)
	Failed        uint64 `json:"failed"`       // origin unreachable and stale not allowed, or refused
}

func freshnessCounts(s fill.FreshStats) FreshnessCounts {
	return FreshnessCounts{Revalidations: s.Revalidations, NotModified: s.NotModified, Unchanged: s.Unchanged,
		Changed: s.Changed, ServedStale: s.Stale, Failed: s.Failed}
}

// freshness is in's freshness by its origin's policy; nil when it is not
// stored any more.
func (a *adminServer) freshness(in store.Info) *FreshnessStatus {
	m, err := a.n.store.Manifest(in.Key)
	if err != nil {
		return nil
	}
	f := m.Freshness
	st := &FreshnessStatus{FetchedAt: f.FetchedAt, LastModified: f.LastModified, CacheControl: f.CacheControl, Expires: f.Expires}
	if m.Live {
		st.State = "live"
		return st
	}
	pol := fill.DefaultPolicy()
	if o, _ := originForKey(a.n.cfg.Origins, in.Key); o != nil {
		pol = o.Policy()
	}
	st.FreshUntil = pol.FreshUntil(f)
	switch {
	case a.n.fills.Revalidating(in.Key):
		st.State = "revalidating"
	case pol.Fresh(f, time.Now()):
		st.State = "fresh"
	default:
		st.State = "stale"
	}
	return st
}

// freshCollectors are the revalidation counters, read when scraped.
func freshCollectors(n *Node) []prometheus.Collector {
	counters := []struct {
		name, help string
		of         func(fill.FreshStats) uint64
	}{
		{"rtspmesh_revalidations_total", "Stale recordings revalidated with their origin on a hit.",
			func(s fill.FreshStats) uint64 { return s.Revalidations }},
		{"rtspmesh_revalidations_not_modified_total", "Revalidations the origin answered 304 Not Modified.",
			func(s fill.FreshStats) uint64 { return s.NotModified }},
		{"rtspmesh_revalidations_unchanged_total", "Revalidations the origin answered with the same description.",
			func(s fill.FreshStats) uint64 { return s.Unchanged }},
		{"rtspmesh_revalidations_changed_total", "Revalidations that found the stream changed at the origin: a new recording.",
			func(s fill.FreshStats) uint64 { return s.Changed }},
		{"rtspmesh_stale_served_total", "Stale recordings served because their origin was unreachable (stale_if_error).",
			func(s fill.FreshStats) uint64 { return s.Stale }},
		{"rtspmesh_revalidations_failed_total", "Stale recordings not served: the origin was unreachable and stale was not allowed, or it refused.",
			func(s fill.FreshStats) uint64 { return s.Failed }},
	}
	out := make([]prometheus.Collector, 0, len(counters))
	for _, c := range counters {
		out = append(out, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 {
			return float64(c.of(n.fills.FreshStats()))
		}))
	}
	return out
}
