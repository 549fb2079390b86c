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

// TestFillResumesWhereOriginDrops: origins that drop packets of every
// play at a high Speed once it reaches a point of the clip (the built-in
// origin's controlled fault: a server whose queue for a client overflowed
// because the client took the packets slower than the Speed it granted).
// A prefetch asking for Speed 64 in one session, and one pulling 4 ranges
// at Speed 8 whose last range drops, each store what a prefetch at Speed
// 2 (no drop) stores, packet for packet, and play the origin's frames
// (ffmpeg): a session that lost packets ends before the gap and a session
// at half its speed resumes after the last packet stored (the ranges give
// way to one session). Before, such a fill was complete with the dropped
// packets missing, and a player stalled at the hole for as long as it
// was: BenchmarkNodeVOD500 found it, 7587 packets of its prefetch at Speed
// 64 dropped by the origin's gortsplib queue.
func TestFillResumesWhereOriginDrops(t *testing.T) {
	t.Parallel()
	ts, err := os.ReadFile(speedClip.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	// early drops at 3 s of plays at Speed 16 or more; late at 10 s, at 8.
	early := startOrigin(t, func(c *origin.Config) {
		c.Media = map[string][]byte{"clip.ts": ts}
		c.MaxSpeed = 64
		c.DropAtSpeed, c.DropAt, c.DropCount = 16, 3*time.Second, 40
	})
	late := startOrigin(t, func(c *origin.Config) {
		c.Media = map[string][]byte{"clip.ts": ts}
		c.DropAtSpeed, c.DropAt, c.DropCount = 8, 10*time.Second, 40
	})
	ref := rangesNode(t, "rtsp://"+early.Addr(), 1, 0, 2)
	one := rangesNode(t, "rtsp://"+early.Addr(), 1, 0, 64)
	ranged := rangesNode(t, "rtsp://"+late.Addr(), 4, 0, 8)
	var wg sync.WaitGroup
	wg.Go(func() { prefetch(t, ref, "o/clip.ts") })
	wg.Go(func() { prefetch(t, one, "o/clip.ts") })
	wg.Go(func() { prefetch(t, ranged, "o/clip.ts") })
	wg.Wait()
	// ref's and one's: Speed 64, 32 and 16 drop, 8 ends the recording.
	if _, plays := early.Sessions("clip.ts"); plays != 5 {
		t.Fatalf("%d PLAYs at the origin that drops early, want 5: Speed 2 (no drop); 64, 32, 16 (dropped) and 8", plays)
	}
	// The head and at least one more range, then one session at Speed 4.
	if _, plays := late.Sessions("clip.ts"); plays < 3 {
		t.Fatalf("%d PLAYs at the origin that drops late, want 3 or more: ranges, then one session", plays)
	}
	want := trackRTP(t, ref, "o/clip.ts")
	for _, tc := range []struct {
		name string
		n    *testNode
	}{{"one session", one}, {"4 ranges", ranged}} {
		got := trackRTP(t, tc.n, "o/clip.ts")
		if len(got) != len(want) || len(want) != 2 {
			t.Fatalf("%s: %d tracks stored, %d at Speed 2; want 2", tc.name, len(got), len(want))
		}
		for tr, w := range want {
			if err := testkit.SameRTP(got[tr], w); err != nil {
				t.Fatalf("%s: track %d against the fill at Speed 2: %v", tc.name, tr, err)
			}
		}
	}
	direct := "rtsp://" + early.Addr() + "/clip.ts"
	t.Run("play one session's", func(t *testing.T) {
		t.Parallel()
		playsAsOrigin(t, "the fill that resumed where the origin dropped", one.url("o/clip.ts"), direct)
	})
	t.Run("play the ranges'", func(t *testing.T) {
		t.Parallel()
		playsAsOrigin(t, "the ranged fill that went on with one session where a range dropped", ranged.url("o/clip.ts"), direct)
	})
}
