package rtspedge

import (
	"context"
	"sync"
	"time"
)

// replayGrid wakes the TCP replays that wait for the same step of the wake
// grid (SendAhead/wakeGrid, replay.go) together: one runtime timer and one
// channel close a step, however many replays wait for it, where every
// replay's own timer was one timer (and one wake-up of its own) each.
type replayGrid struct {
	mu    sync.Mutex
	steps map[int64]chan struct{} // by the step's time, UnixNano
}

// wait returns true at step (a time on the grid), at once when it is past,
// or false when ctx ends first.
func (g *replayGrid) wait(ctx context.Context, step time.Time) bool {
	d := time.Until(step)
	if d <= 0 {
		return ctx.Err() == nil
	}
	key := step.UnixNano()
	g.mu.Lock()
	ch, ok := g.steps[key]
	if !ok {
		if g.steps == nil {
			g.steps = make(map[int64]chan struct{})
		}
		ch = make(chan struct{})
		g.steps[key] = ch
		time.AfterFunc(d, func() {
			g.mu.Lock()
			delete(g.steps, key)
			g.mu.Unlock()
			close(ch)
		})
	}
	g.mu.Unlock()
	select {
	case <-ctx.Done():
		return false
	case <-ch:
		return true
	}
}
