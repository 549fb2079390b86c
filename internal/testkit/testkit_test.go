package testkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunStopsAndWaits: stop cancels the component's context and returns
// only once the component has returned; a second stop does nothing.
func TestRunStopsAndWaits(t *testing.T) {
	var returned atomic.Bool
	stop := Run(t, "component", func(ctx context.Context) error {
		<-ctx.Done()
		returned.Store(true)
		return nil
	})
	stop()
	if !returned.Load() {
		t.Fatal("stop returned before the component did")
	}
	stop()
}

// TestRunReportsError: a component that fails fails the test.
func TestRunReportsError(t *testing.T) {
	ft := &fakeT{TB: t}
	stop := Run(ft, "component", func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("broken")
	})
	stop()
	if ft.errors.Load() != 1 {
		t.Fatalf("%d errors reported, want 1", ft.errors.Load())
	}
}

// TestEventually: a condition that becomes true passes.
func TestEventually(t *testing.T) {
	start := time.Now()
	Eventually(t, 10*time.Second, "50 ms passed", func() bool { return time.Since(start) > 50*time.Millisecond })
}

// fakeT counts Errorf calls instead of failing the test.
type fakeT struct {
	testing.TB
	errors atomic.Int32
}

func (f *fakeT) Errorf(string, ...any) { f.errors.Add(1) }
func (f *fakeT) Helper()               {}

// TestRingLogKeepsLast: the failure log keeps the last failLogLines
// records, oldest first.
func TestRingLogKeepsLast(t *testing.T) {
	r := &ringLog{}
	log := slog.New(slog.NewTextHandler(r, nil))
	for i := range failLogLines + 5 {
		log.Info("line", "i", i)
	}
	got := strings.Split(strings.TrimSuffix(r.String(), "\n"), "\n")
	if len(got) != failLogLines || !strings.HasSuffix(got[0], "i=5") || !strings.HasSuffix(got[len(got)-1], fmt.Sprintf("i=%d", failLogLines+4)) {
		t.Fatalf("%d lines, first %q, last %q", len(got), got[0], got[len(got)-1])
	}
}
