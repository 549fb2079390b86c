package rtspedge

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestReplayGrid: replays waiting for one step share one channel and all
// wake at the step, not before; a step past returns at once; a cancelled
// wait returns false; a woken step is forgotten.
func TestReplayGrid(t *testing.T) {
	t.Parallel()
	var g replayGrid
	step := time.Now().Add(50 * time.Millisecond).Truncate(10 * time.Millisecond)
	const waiters = 20
	woke := make(chan time.Time, waiters)
	var wg sync.WaitGroup
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g.wait(t.Context(), step) {
				woke <- time.Now()
			}
		}()
	}
	wg.Wait()
	close(woke)
	n := 0
	for at := range woke {
		n++
		if at.Before(step) {
			t.Errorf("woke %v before its step", step.Sub(at))
		}
	}
	if n != waiters {
		t.Fatalf("%d of %d waiters woke", n, waiters)
	}
	g.mu.Lock()
	left := len(g.steps)
	g.mu.Unlock()
	if left != 0 {
		t.Errorf("%d steps kept after they woke", left)
	}
	if !g.wait(t.Context(), time.Now().Add(-time.Second)) {
		t.Error("a past step did not return true at once")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if g.wait(ctx, time.Now().Add(time.Hour)) {
		t.Error("a cancelled wait returned true")
	}
}
