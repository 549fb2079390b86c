package node_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// logRecords is a slog handler that keeps every record, for tests that
// check what a node logged and at which level.
type logRecords struct {
	mu    *sync.Mutex
	recs  *[]string // "LEVEL msg k=v …"
	attrs []slog.Attr
}

func newLogRecords() logRecords { return logRecords{mu: new(sync.Mutex), recs: new([]string)} }

func (l logRecords) Enabled(context.Context, slog.Level) bool { return true }

func (l logRecords) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range l.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s", a)
		return true
	})
	l.mu.Lock()
	*l.recs = append(*l.recs, b.String())
	l.mu.Unlock()
	return nil
}

func (l logRecords) WithAttrs(as []slog.Attr) slog.Handler {
	l.attrs = append(append([]slog.Attr(nil), l.attrs...), as...)
	return l
}

func (l logRecords) WithGroup(string) slog.Handler { return l }

// at returns the records at level lvl or above.
func (l logRecords) at(lvl slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range *l.recs {
		for _, name := range []string{"DEBUG", "INFO", "WARN", "ERROR"} {
			var v slog.Level
			if strings.HasPrefix(r, name+" ") && v.UnmarshalText([]byte(name)) == nil && v >= lvl {
				out = append(out, r)
			}
		}
	}
	return out
}

// startLoggedNode is startNode with the node's log kept in logs.
func startLoggedNode(t *testing.T, cfg node.Config, logs logRecords) *testNode {
	t.Helper()
	n, err := node.New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	stop := testkit.Run(t, "node", n.Run)
	<-n.Ready()
	return &testNode{Node: n, stop: stop}
}

// TestErrorsNameComponentOnce: a node that cannot bind says which part
// failed once ("rtsp server: listen tcp …", not "rtsp server: rtsp server:").
func TestErrorsNameComponentOnce(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		prefix string
		mod    func(*node.Config)
	}{
		{"rtsp server: ", func(c *node.Config) { c.RTSP.Listen = busy.Addr().String() }},
		{"admin api: ", func(c *node.Config) { c.Admin.Listen = busy.Addr().String() }},
	} {
		cfg := nodeConfig(t, nil)
		cfg.Origins = []node.Origin{nodeOrigin("o", "rtsp://127.0.0.1:1")}
		tc.mod(&cfg)
		_, err := node.New(cfg, nil)
		if err == nil {
			t.Fatalf("%s on a busy port: no error", tc.prefix)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tc.prefix) || strings.Count(msg, tc.prefix) != 1 ||
			strings.Count(msg, busy.Addr().String()) != 1 {
			t.Errorf("error %q: want %q once at the start and the address once", msg, tc.prefix)
		}
	}
}

// describeAnswer sends one DESCRIBE and returns the status line's code and
// reason phrase, and how long the answer took.
func describeAnswer(t *testing.T, url string) (base.StatusCode, string, time.Duration) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, ReadTimeout: 30 * time.Second}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, res, err := c.Describe(u)
	took := time.Since(start)
	var bad liberrors.ErrClientBadStatusCode
	switch {
	case errors.As(err, &bad):
		return bad.Code, bad.Message, took
	case err != nil:
		t.Fatalf("describe %s: %v", url, err)
	}
	return res.StatusCode, res.StatusMessage, took
}

// TestOriginUnreachableReason: a player whose origin is down reads why on
// the status line ("503 Origin Unreachable"), and the node logs the cause
// with it.
func TestOriginUnreachableReason(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	cfg := nodeConfig(t, nil)
	cfg.Origins = []node.Origin{nodeOrigin("dead", "rtsp://"+dead)}
	logs := newLogRecords()
	n := startLoggedNode(t, cfg, logs)

	for _, tc := range []struct {
		path   string
		code   base.StatusCode
		reason string
	}{
		{"dead/sample.ts", base.StatusServiceUnavailable, "Origin Unreachable"},
		{"nosuch/sample.ts", base.StatusNotFound, "Unknown Origin"},
		{"dead/../x", base.StatusBadRequest, "Bad Request"},
	} {
		code, reason, _ := describeAnswer(t, n.url(tc.path))
		if code != tc.code || reason != tc.reason {
			t.Errorf("DESCRIBE %s: %d %s, want %d %s", tc.path, code, reason, tc.code, tc.reason)
		}
	}
	var cause string
	for _, r := range logs.at(slog.LevelWarn) {
		if strings.Contains(r, "player request refused") && strings.Contains(r, "status=503") &&
			strings.Contains(r, "reason=Origin Unreachable") && strings.Contains(r, dead) {
			cause = r
		}
	}
	if cause == "" {
		t.Fatalf("no WARN line with the 503's reason and its cause (the origin's address %s):\n%s",
			dead, strings.Join(logs.at(slog.LevelInfo), "\n"))
	}
	t.Logf("logged: %s", cause)
}

// TestLiveRelayIdleCloseIsQuiet: a live relay whose players left closes
// after cache.live_linger, then its source does too; neither is a warning.
func TestLiveRelayIdleCloseIsQuiet(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	logs := newLogRecords()
	linger := func(c *node.Config) { c.Cache.LiveLinger = node.Duration(300 * time.Millisecond) }
	cfgA := nodeConfig(t, org)
	linger(&cfgA)
	a := startLoggedNode(t, cfgA, logs)
	cfgB := nodeConfig(t, org)
	linger(&cfgB)
	cfgB.Mesh.Bootstrap = a.MeshAddrs()
	b := startLoggedNode(t, cfgB, logs)
	testkit.Eventually(t, 10*time.Second, "joined the mesh", func() bool { return len(b.Peers()) > 0 })
	// A, which pulls from the origin, is the stream's designated filler.
	nodes := fillerFirst(t, org, "o/live", a, b)
	a, b = nodes[0], nodes[1]

	if err := firstPacket(t.Context(), a.url("o/live")); err != nil {
		t.Fatal(err)
	}
	if err := firstPacket(t.Context(), b.url("o/live")); err != nil {
		t.Fatal(err)
	}
	// B relays from A, at once or, when it started before A's fill was
	// there to relay (a loaded machine), after its fill converges on A
	// (node/fill/converge.go: Source names A from the hand-over on).
	testkit.Eventually(t, 20*time.Second, "B's live recording relayed from A", func() bool {
		in, err := b.Stream("o/live")
		return err == nil && in.Source == a.PeerID()
	})
	for name, n := range map[string]*testNode{"A": a, "B": b} {
		testkit.Eventually(t, 20*time.Second, name+"'s live fill closed", func() bool {
			in, err := n.Stream("o/live")
			return err == nil && in.State == store.StatePartial && !in.Filling
		})
	}
	// A fill's line comes a moment after its recording shows it ended (a
	// clean-clone run checked in between and found B's line alone).
	idleEnds := func() int {
		var n int
		for _, r := range logs.at(slog.LevelInfo) {
			if strings.HasPrefix(r, "INFO fill end") && strings.Contains(r, "no players left") {
				n++
			}
		}
		return n
	}
	if !testkit.Until(10*time.Second, func() bool { return idleEnds() >= 2 }) || idleEnds() != 2 {
		t.Fatalf("%d INFO \"fill end\" lines saying no players left, want 2 (A and B):\n%s", idleEnds(),
			strings.Join(logs.at(slog.LevelInfo), "\n"))
	}
	if w := logs.at(slog.LevelWarn); len(w) > 0 {
		t.Fatalf("a live relay's idle close logged warnings:\n%s", strings.Join(w, "\n"))
	}
}
