package node_test

import (
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// speedClip is long enough that a fill's speed shows beside its set-up.
var speedClip = interop.Clip{Name: "h264-aac-12s.ts", Video: "h264", Audio: "aac", Length: 12 * time.Second}

// startClipOrigin runs the built-in origin serving clip at clip.ts.
func startClipOrigin(t testing.TB, clip interop.Clip) *origin.Origin {
	t.Helper()
	ts, err := os.ReadFile(clip.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	return startOrigin(t, func(c *origin.Config) { c.Media = map[string][]byte{"clip.ts": ts} })
}

// sdpBitrate is the bitrate (bit/s) the origin declares for path (b=AS).
func sdpBitrate(t testing.TB, org *origin.Origin, path string) int64 {
	t.Helper()
	u, err := base.ParseURL("rtsp://" + org.Addr() + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, res, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`b=AS:(\d+)`).FindSubmatch(res.Body)
	if m == nil {
		t.Fatalf("the origin declares no b=AS:\n%s", res.Body)
	}
	kbit, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kbit * 1000
}

// timedFill plays path on n with ffmpeg while it fills from the origin, and
// the origin's own stream beside it: the frames of each, how long the
// fill took (from the recording's creation to complete), and how long
// the player through n ran. during, when not nil, runs while the fill does.
func timedFill(t *testing.T, org *origin.Origin, n *testNode, path string, during func()) (viaNode, direct []string, fill, played time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	var dn, dd decoded
	start := time.Now()
	wg.Go(func() { dd = decode("rtsp://"+org.Addr()+"/"+path[len("o/"):], "tcp") })
	wg.Go(func() { dn = decode(n.url(path), "tcp"); played = time.Since(start) })
	if during != nil {
		during()
	}
	var in store.Info
	testkit.Eventually(t, time.Minute, "the recording is complete", func() bool {
		var err error
		in, err = n.Stream(path)
		return err == nil && in.State == store.StateComplete
	})
	fill = time.Since(in.Created)
	wg.Wait()
	return dn.frames(t), dd.frames(t), fill, played
}

// TestFillAtSpeed: a node asks the built-in origin for Speed 8 (the
// default): the recording is complete in a fraction of its duration, the
// player that started the fill is still paced at real time, and its frames
// are the origin's. A watched fill pulls no ranges (range_parallelism is
// 5 by default): one session at the origin.
func TestFillAtSpeed(t *testing.T) {
	t.Parallel()
	org := startClipOrigin(t, speedClip)
	cfg := nodeConfig(t, org)
	cfg.Mesh.Enabled = false
	cfg.Origins[0].RangeParallelism = nil // the default, 5
	n := startNode(t, cfg)

	viaNode, direct, fill, played := timedFill(t, org, n, "o/clip.ts", nil)
	sameFrames(t, "a player of a fill at Speed 8", viaNode, direct)
	d := speedClip.Length
	t.Logf("fill of %v took %v (%.1fx real time); the player ran %v", d, fill.Round(time.Millisecond), d.Seconds()/fill.Seconds(), played.Round(time.Millisecond))
	if fill > d/3 {
		t.Fatalf("the fill took %v, more than a third of the %v clip: the origin's Speed was not used", fill, d)
	}
	if played < d*8/10 {
		t.Fatalf("the player ran %v for a %v clip: not paced at real time", played, d)
	}
	if _, plays := org.Sessions("clip.ts"); plays != 2 {
		t.Fatalf("%d PLAYs at the origin, want 2: the node's one session and the direct player's", plays)
	}
}

// TestFillRateLimit: origins[].rate_limit at twice the stream's bitrate
// holds a fill asked at Speed 8 to about twice real time, and the player of
// the fill still gets every frame at real time. The admin API shows the
// fill's progress meanwhile.
func TestFillRateLimit(t *testing.T) {
	t.Parallel()
	org := startClipOrigin(t, speedClip)
	bitrate := sdpBitrate(t, org, "clip.ts")
	cfg := nodeConfig(t, org)
	cfg.Mesh.Enabled = false
	cfg.Origins[0].RateLimit = node.Bitrate(2 * bitrate)
	cfg.Admin.Listen = "127.0.0.1:0"
	n := startNode(t, cfg)
	base := "http://" + n.AdminAddr().String()

	viaNode, direct, fill, played := timedFill(t, org, n, "o/clip.ts", func() {
		key, err := node.KeyOf(n.Node, "o/clip.ts")
		if err != nil {
			t.Fatal(err)
		}
		s := waitStream(t, base, store.StreamID(key), "the fill shows its progress", func(s node.StreamStatus) bool {
			return s.Fill != nil && s.Fill.MediaDone >= 2
		})
		p := s.Fill
		if p.MediaTotal < 11 || p.MediaTotal > 13 || p.MediaDone > p.MediaTotal || p.Speed < 1 || p.Speed > 4 ||
			p.ETA <= 0 || p.RateBits <= 0 || p.RateBits > 3*float64(bitrate) || p.RateLimitBit != 2*bitrate || p.Bytes == 0 {
			t.Fatalf("progress of a fill capped at twice the bitrate (%d bit/s): %+v", bitrate, *p)
		}
	})
	sameFrames(t, "a player of a capped fill", viaNode, direct)
	d := speedClip.Length
	t.Logf("capped at %v: fill of %v took %v (%.2fx real time); the player ran %v", cfg.Origins[0].RateLimit, d,
		fill.Round(time.Millisecond), d.Seconds()/fill.Seconds(), played.Round(time.Millisecond))
	if fill < d*4/10 || fill > d*8/10 {
		t.Fatalf("the fill took %v; at twice the bitrate it should take about %v", fill, d/2)
	}
}

// TestPeerRateLimit: mesh.rate_limit at twice the stream's bitrate holds a
// fill from a neighbour (otherwise as fast as the link) to about twice real
// time, and the player of the fill gets the origin's frames.
func TestPeerRateLimit(t *testing.T) {
	t.Parallel()
	org := startClipOrigin(t, speedClip)
	bitrate := sdpBitrate(t, org, "clip.ts")
	capped := func(c *node.Config) { c.Mesh.RateLimit = node.Bitrate(2 * bitrate) }
	a := meshNode(t, org, capped)
	b := meshNode(t, org, capped, a)
	ab := fillerFirst(t, org, "o/clip.ts", a, b) // the filler pulls from the origin, uncapped
	a, b = ab[0], ab[1]
	if err := firstPacket(t.Context(), a.url("o/clip.ts")); err != nil {
		t.Fatal(err)
	}
	waitCompleteAt(t, a, "o/clip.ts")

	viaB, direct, fill, played := timedFill(t, org, b, "o/clip.ts", nil)
	sameFrames(t, "a player of a capped fill from a peer", viaB, direct)
	if in, err := b.Stream("o/clip.ts"); err != nil || in.Source != a.PeerID() {
		t.Fatalf("B filled from %q (%v), want A %s", in.Source, err, a.PeerID())
	}
	d := speedClip.Length
	t.Logf("capped at %v per peer: fill of %v from A took %v (%.2fx real time); the player ran %v", node.Bitrate(2*bitrate), d,
		fill.Round(time.Millisecond), d.Seconds()/fill.Seconds(), played.Round(time.Millisecond))
	if fill < d*4/10 || fill > d*8/10 {
		t.Fatalf("the fill from A took %v; at twice the bitrate it should take about %v", fill, d/2)
	}
}

// TestGstSpeedScalesClock: gst-rtsp-server grants Speed 8 but slows its RTP
// clock by as much, which would store the clip to play eight times too
// fast (decoded frames alike: framemd5 does not see it). The node notices
// before it stores a packet, fills at real time instead, and asks that
// origin for no Speed again: the recording spans the clip's duration, and
// its player ran at real time with the origin's frames.
func TestGstSpeedScalesClock(t *testing.T) {
	t.Parallel()
	clip := interop.Clip{Name: "h264-aac-12s.mp4", Video: "h264", Audio: "aac", Length: 12 * time.Second}
	gst := interop.StartGstServer(t, interop.Mount{Path: "clip", Pipeline: clip.Pipeline(clip.Path(t))})
	cfg := nodeConfig(t, nil)
	cfg.Mesh.Enabled = false
	cfg.Origins = []node.Origin{{Name: "gst", URL: "rtsp://" + gst.Addr}}
	n := startNode(t, cfg)

	var wg sync.WaitGroup
	var viaNode, direct []string
	var played time.Duration
	wg.Go(func() { direct = frameMD5(t, gst.URL("clip"), "tcp") })
	wg.Go(func() {
		start := time.Now()
		viaNode = frameMD5(t, n.url("gst/clip"), "tcp")
		played = time.Since(start)
	})
	wg.Wait()
	sameFrames(t, "through the node", viaNode, direct)
	in := waitCompleteAt(t, n, "gst/clip")
	_, last, err := n.Store().Span(in.Key)
	if err != nil {
		t.Fatal(err)
	}
	d := clip.Length
	t.Logf("recording spans %v of the %v clip; the player ran %v; %d PLAYs at the origin", last, d, played.Round(time.Millisecond), gst.Requests("PLAY", "clip"))
	if last < d-time.Second || played < d*8/10 {
		t.Fatalf("recording spans %v of a %v clip, player ran %v: stored at the speed it was sent", last, d, played)
	}
	// Direct, the fill with Speed, the fill again without.
	if plays := gst.Requests("PLAY", "clip"); plays != 3 {
		t.Fatalf("%d PLAYs at the origin, want 3", plays)
	}
	// The next fill of that origin asks for no Speed at once.
	if err := n.Store().Delete(in.Key); err != nil {
		t.Fatal(err)
	}
	if err := firstPacket(t.Context(), n.url("gst/clip")); err != nil {
		t.Fatal(err)
	}
	// A PLAY with Speed would have been dropped before its first packet:
	// once the fourth is counted there is no fifth.
	testkit.Eventually(t, 5*time.Second, "the second fill's PLAY counted", func() bool { return gst.Requests("PLAY", "clip") >= 4 })
	if plays := gst.Requests("PLAY", "clip"); plays != 4 {
		t.Fatalf("%d PLAYs at the origin after a second fill, want 4", plays)
	}
}
