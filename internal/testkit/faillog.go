package testkit

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// failLogLines bounds what FailureLogger keeps: the last lines, which say
// what the component did just before the test gave up on it.
const failLogLines = 300

// FailureLogger is a logger for a component under test that keeps its
// last failLogLines records (info and above) and prints them through tb.Log
// when the test has failed, once the test's later cleanups (the component's
// stop among them) have run: a failure in CI comes with what the component
// logged. The component may log after the test ended (only the buffer is
// written then). With LogEnv set it is Logger's stderr logger instead.
// Call it before starting the component, so its cleanup runs last.
func FailureLogger(tb testing.TB) *slog.Logger {
	if os.Getenv(LogEnv) != "" {
		return Logger()
	}
	r := &ringLog{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("what the component logged (its last %d records at most):\n%s", failLogLines, r.String())
		}
	})
	return slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// ringLog keeps the last failLogLines writes (slog's text handler writes a
// record at a time).
type ringLog struct {
	mu    sync.Mutex
	lines []string
	next  int
}

func (r *ringLog) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := string(b)
	if len(r.lines) < failLogLines {
		r.lines = append(r.lines, line)
	} else {
		r.lines[r.next] = line
		r.next = (r.next + 1) % failLogLines
	}
	return len(b), nil
}

func (r *ringLog) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sb strings.Builder
	for i := range r.lines {
		sb.WriteString(r.lines[(r.next+i)%len(r.lines)])
	}
	return sb.String()
}
