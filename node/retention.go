package node

import (
	"context"
	"slices"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// retain runs a retention pass every cache.retention_interval until ctx
// ends.
func (n *Node) retain(ctx context.Context) {
	t := time.NewTicker(n.cfg.Cache.RetentionInterval.Std())
	defer t.Stop()
	for ctx.Err() == nil {
		select {
		case now := <-t.C:
			n.retentionPass(now)
		case <-ctx.Done():
		}
	}
}

// retentionPass evicts, besides the byte quota the store keeps: recordings
// not played for their origin's max_unplayed, then, while data_dir's free
// space is below cache.free_target, the least recently played recordings
// whose sizes add up to the shortfall (space comes back once value-log GC
// has rewritten their files, so one pass evicts for one shortfall only).
// Pinned recordings, and recordings being filled or played, stay.
func (n *Node) retentionPass(now time.Time) {
	infos, err := n.store.List()
	if err != nil {
		n.log.Warn("retention: list recordings", "err", err)
		return
	}
	var idle []store.Info
	for _, in := range infos {
		if in.Pinned || in.Filling || in.Readers > 0 {
			continue
		}
		o, _ := originForKey(n.cfg.Origins, in.Key)
		limit := defaultMaxUnplayed
		if o != nil {
			limit = o.maxUnplayed()
		}
		if limit > 0 && now.Sub(in.LastAccess) > limit {
			n.retire(in, "max_unplayed", "unplayed", now.Sub(in.LastAccess).Round(time.Second))
			continue
		}
		idle = append(idle, in)
	}
	target := int64(n.cfg.Cache.FreeTarget)
	sp := n.store.Space()
	if target <= 0 || sp.Free < 0 || sp.Free >= target {
		return
	}
	short := target - sp.Free
	slices.SortFunc(idle, func(a, b store.Info) int { return a.LastAccess.Compare(b.LastAccess) })
	for _, in := range idle {
		if short <= 0 {
			break
		}
		if n.retire(in, "free_target", "free", sp.Free, "target", target) {
			short -= int64(in.Bytes)
		}
	}
}

// retire evicts one recording for retention, saying why.
func (n *Node) retire(in store.Info, why string, attrs ...any) bool {
	if err := n.store.DeleteIdle(in.Key); err != nil {
		n.log.Debug("retention: not evicted", "stream", in.Key, "why", why, "err", err)
		return false
	}
	n.log.Info("retention: evicted", append([]any{"stream", in.Key, "why", why, "bytes", in.Bytes,
		"last_played", in.LastAccess}, attrs...)...)
	return true
}
