package testkit

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// StopWithin bounds how long Run's stop waits for the component to return
// after its context is cancelled.
const StopWithin = 30 * time.Second

// Run runs fn on a goroutine until the test ends, or until the returned
// stop is called, whichever comes first: stop cancels fn's context and
// waits for fn to return. The test fails if fn returns an error (a
// component returns nil when its context ends), or does not return within
// StopWithin. stop may be called more than once and from any goroutine.
func Run(t testing.TB, what string, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			timer := time.NewTimer(StopWithin)
			defer timer.Stop()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", what, err)
				}
			case <-timer.C:
				t.Errorf("%s did not return %v after cancel", what, StopWithin)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Eventually polls cond every 5 ms until it holds, and fails the test
// (t.Fatalf, so from the test's goroutine only) if it does not within.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(within, cond) {
		t.Fatalf("%s: not true within %v", what, within)
	}
}

// Until polls cond every 5 ms until it holds (true) or within has passed
// (false), for a caller that reports the failure itself.
func Until(within time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// LogEnv names the environment variable that turns test logs on: set, the
// components under test log at debug level to stderr (not t.Log, which
// panics when a component logs after its test ended); unset, they log
// nowhere.
const LogEnv = "RTSPMESH_TEST_LOG"

// Logger is the logger to hand the components under test (or a test's
// subprocess).
func Logger() *slog.Logger {
	if os.Getenv(LogEnv) == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
