package rtspedge

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// capture is a slog handler that keeps every record as text.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{c}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct{ c *capture }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.buf.Write(p)
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// TestCredentialsNeverLogged: user info of an origin URL is used but appears
// in no log line and no error, also when the origin fails.
func TestCredentialsNeverLogged(t *testing.T) {
	t.Parallel()
	o, stop := startOrigin(t, origin.Config{})
	st := newStore(t)
	var logs capture
	url := "rtsp://mallory:hunter2secret@" + o.Addr() + "/" + samplePath
	os, err := OpenOrigin(t.Context(), OriginRequest{URL: url, Timeout: 2 * time.Second, AskMetaInfo: true, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	m := os.Manifest()
	m.Key = "k"
	w, err := st.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- os.Run(t.Context(), w) }()
	testkit.Eventually(t, 10*time.Second, "packets", func() bool { _, _, ok := w.Last(); return ok })
	stop()
	err = <-runErr
	_, err2 := OpenOrigin(t.Context(), OriginRequest{URL: url, Timeout: time.Second, Logger: logs.logger()})
	for _, s := range []string{logs.String(), fmt.Sprint(err), fmt.Sprint(err2)} {
		if strings.Contains(s, "hunter2secret") || strings.Contains(s, "mallory") {
			t.Fatalf("credentials leaked: %s", s)
		}
	}
	if !strings.Contains(logs.String(), o.Addr()) {
		t.Fatalf("logs do not name the origin at all:\n%s", logs.String())
	}
	_ = w.Finish(store.StatePartial)
}
