package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

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
		Logger: testkit.Logger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	o, err := origin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o, testkit.Run(t, "origin", o.Run)
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
		// One session per fill: a fill whose players left (most tests'
		// players leave after a packet or a decode) would otherwise pull
		// ranges at once at the built-in origin's Speed and add sessions
		// there that tests counting them do not ask about. Tests of ranges
		// set range_parallelism themselves.
		one := 1
		cfg.Origins = []node.Origin{{Name: "o", URL: "rtsp://" + org.Addr(), RangeParallelism: &one}}
	}
	return cfg
}

// startNode runs a node until the test ends (or stop is called).
func startNode(t testing.TB, cfg node.Config) *testNode {
	t.Helper()
	n, err := node.New(cfg, testkit.FailureLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := testkit.Run(t, "node", n.Run)
	<-n.Ready() // closed by Run before it serves; a Run that fails first fails the test in cleanup
	return &testNode{Node: n, stop: stop}
}

func (n *testNode) url(path string) string {
	return fmt.Sprintf("rtsp://%s/%s", n.RTSPAddr(), path)
}

// decoded is what ffmpeg decoded from a URL, possibly on another goroutine.
type decoded struct {
	md5s []string
	err  error
}

// decode decodes url's video with ffmpeg over transport ("": ffmpeg's
// choice) with extra input options: the md5 of every frame
// (interop.VideoMD5s). It may run on any goroutine.
func decode(url, transport string, extra ...string) decoded {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var args []string
	if transport != "" {
		args = append(args, "-rtsp_transport", transport)
	}
	args = append(append(args, extra...), "-i", url)
	sums, _, err := interop.VideoMD5s(ctx, args...)
	return decoded{md5s: sums, err: err}
}

// frames are the decoded md5s; the test fails if ffmpeg did.
func (d decoded) frames(t testing.TB) []string {
	t.Helper()
	if d.err != nil {
		t.Fatal(d.err)
	}
	return d.md5s
}

// frameMD5 is decode on the test's goroutine.
func frameMD5(t testing.TB, url, transport string, extra ...string) []string {
	t.Helper()
	return decode(url, transport, extra...).frames(t)
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
	c, desc, err := interop.SetUp(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, desc
}

// pullLive has n (called name) play the live stream at path until its first
// packet, and waits up to within for n to seal a segment of it (key): n's
// upstream then lingers, and neighbours find n as a provider.
func pullLive(t *testing.T, n *testNode, name, path, key string, within time.Duration) {
	t.Helper()
	if err := firstPacket(t.Context(), n.url(path)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, within, "a sealed live segment on "+name, func() bool {
		m, err := n.Store().Manifest(key)
		return err == nil && len(m.Segments) > 0
	})
}
