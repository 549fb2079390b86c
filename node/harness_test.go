package node_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"

	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// testLogger writes to the test log only when -v or a failure asks for it.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RTSPMESH_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startOrigin runs the built-in origin with the sample clip at sample.ts on
// 127.0.0.1:0 until the test ends.
func startOrigin(t testing.TB, mod func(*origin.Config)) *origin.Origin {
	o, _ := startOriginStoppable(t, mod)
	return o
}

// startOriginStoppable is startOrigin with a function that stops the origin
// (its sessions end, its port closes) and waits for it.
func startOriginStoppable(t testing.TB, mod func(*origin.Config)) (*origin.Origin, func()) {
	t.Helper()
	cfg := origin.Config{
		Listen: "127.0.0.1:0",
		Media:  map[string][]byte{"sample.ts": origin.SampleClip()},
		Logger: testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	o, err := origin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o, runUntilCleanup(t, "origin", o.Run)
}

// runUntilCleanup runs fn until the test ends, or until the returned stop
// is called, and checks it stopped cleanly.
func runUntilCleanup(t testing.TB, what string, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", what, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s did not stop within 20s of its context ending", what)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// testNode is a node under test with the handle to stop it early.
type testNode struct {
	*node.Node
	stop func() // stops the node and waits for Run to return
}

// nodeConfig is a node config for tests: everything on 127.0.0.1 port 0,
// no mDNS, the origin under the name "o".
func nodeConfig(t testing.TB, org *origin.Origin) node.Config {
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.RTSP.Listen = "127.0.0.1:0"
	cfg.RTSP.UDPRTPListen = "127.0.0.1:0"
	cfg.RTSP.UDPRTCPListen = ""
	cfg.Admin.Listen = ""
	cfg.Mesh.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Mesh.MDNS = false
	// The race detector and parallel ffmpeg decodes slow DHT queries down a
	// lot; the tests ask where a fill came from, not how fast it was found
	// (make bench measures that with the default).
	cfg.Mesh.FindTimeout = node.Duration(3 * time.Second)
	cfg.OriginTimeout = node.Duration(3 * time.Second)
	if org != nil {
		cfg.Origins = []node.Origin{{Name: "o", URL: "rtsp://" + org.Addr()}}
	}
	return cfg
}

// startNode runs a node until the test ends (or stop is called).
func startNode(t testing.TB, cfg node.Config) *testNode {
	t.Helper()
	n, err := node.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := runUntilCleanup(t, "node", n.Run)
	<-n.Ready() // closed by Run before it serves; a Run that fails first fails the test in cleanup
	return &testNode{Node: n, stop: stop}
}

func (n *testNode) url(path string) string {
	return fmt.Sprintf("rtsp://%s/%s", n.RTSPAddr(), path)
}

// frameMD5 decodes url with ffmpeg and returns the framemd5 lines of its
// video stream (stream 0): "pts, duration, size, md5" without the stream index.
func frameMD5(t testing.TB, url, transport string, extra ...string) []string {
	t.Helper()
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin"}
	if transport != "" {
		args = append(args, "-rtsp_transport", transport)
	}
	args = append(args, extra...)
	args = append(args, "-i", url, "-map", "0:v:0", "-f", "framemd5", "-")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", url, err, errb.String())
	}
	return videoMD5s(out.String())
}

// videoMD5s keeps the md5 column of the framemd5 lines: decoded content in
// order, independent of timestamps the transport may shift.
func videoMD5s(out string) []string {
	var md5s []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 6 {
			continue
		}
		md5s = append(md5s, strings.TrimSpace(f[5]))
	}
	return md5s
}

// sameFrames fails the test unless got and want hold the same decoded frames.
func sameFrames(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: the reference decoded no frames", what)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: frame %d differs: %s, want %s", what, i, got[i], want[i])
		}
	}
}

// eventually polls cond every 10 ms until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("%s: not true within %s", what, within)
		case <-tick.C:
		}
	}
}

func nodeOrigin(name, url string) node.Origin { return node.Origin{Name: name, URL: url} }

// storeKey is the stream key of the origin's sample clip.
func storeKey(t testing.TB, org *origin.Origin) string {
	t.Helper()
	key, err := node.CanonicalKey("rtsp://" + org.Addr() + "/sample.ts")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// setUpPlayer connects a gortsplib client to url over TCP and sends
// DESCRIBE and SETUP of every media; the client closes when the test ends.
func setUpPlayer(t *testing.T, url string) (*gortsplib.Client, *description.Session) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("DESCRIBE %s: %v", url, err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("SETUP %s: %v", url, err)
	}
	return c, desc
}
