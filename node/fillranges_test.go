package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// prefetch asks n's admin API to prefetch path and waits until the
// recording is complete: how long that took.
func prefetch(t testing.TB, n *testNode, path string) time.Duration {
	t.Helper()
	start := time.Now()
	startPrefetch(t, n, path)
	testkit.Eventually(t, 3*time.Minute, "the prefetch of "+path+" is complete", func() bool {
		in, err := n.Stream(path)
		return err == nil && in.State == store.StateComplete
	})
	return time.Since(start)
}

// startPrefetch asks n's admin API to prefetch path.
func startPrefetch(t testing.TB, n *testNode, path string) {
	t.Helper()
	body, _ := json.Marshal(node.PrefetchRequest{Path: path})
	res, err := http.Post(fmt.Sprintf("http://%s/api/v1/prefetch", n.AdminAddr()), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("prefetch %s: %s", path, res.Status)
	}
}

// trackRTP is the RTP of each track of n's recording of path, in order.
func trackRTP(t testing.TB, n *testNode, path string) map[uint8][][]byte {
	t.Helper()
	in, err := n.Stream(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Store().NewReader(in.Key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[uint8][][]byte{}
	for {
		p, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[p.Track] = append(out[p.Track], bytes.Clone(p.RTP))
	}
}

// playsAsOrigin plays url (at once) and direct, the origin's URL, with
// ffmpeg side by side, and fails the test unless both decode the same
// video and audio frames; it returns the play of url.
func playsAsOrigin(t *testing.T, what, url, direct string) *interop.Play {
	t.Helper()
	var wg sync.WaitGroup
	var got, want *interop.Play
	wg.Go(func() { got = interop.Run(t, interop.FFmpeg, url, interop.Options{Unqueued: true}) })
	wg.Go(func() { want = interop.Run(t, interop.FFmpeg, direct, interop.Options{}) })
	wg.Wait()
	for _, p := range []*interop.Play{got, want} {
		if err := p.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if err := interop.SameFrames(got.Frames, want.Frames); err != nil {
		t.Fatalf("%s against the origin: %v", what, err)
	}
	return got
}

// rangesNode is a node (no mesh, admin API on) whose origin "o" is url,
// pulling at most ranges sessions at once and asking for speed (1: no
// Speed), with max_sessions.
func rangesNode(t *testing.T, url string, ranges, maxSessions int, speed float64) *testNode {
	cfg := nodeConfig(t, nil)
	cfg.Mesh.Enabled = false
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Origins = []node.Origin{{Name: "o", URL: url, Speed: &speed, RangeParallelism: &ranges, MaxSessions: maxSessions}}
	return startNode(t, cfg)
}

// checkRangePrefetch prefetches path on a node pulling 4 ranges at once
// and on one pulling one, both asking for speed, at the same time: the
// first must have pulled 2 to 4 ranges (plays counts the PLAYs of path at
// the origin: the single pull's one and the ranges'; it splits what is
// left of the clip when its first session starts, in ranges of at least
// 2 s), both must store the same packets per track, and the ranged
// recording must play (ffmpeg, video and audio) the frames the origin's
// direct does. How much faster the ranges were is logged: a timed bound
// here failed on loaded machines (BenchmarkPrefetch90s measures it).
func checkRangePrefetch(t *testing.T, url, path, direct string, clip time.Duration, speed float64, plays func() int) {
	ranged, single := rangesNode(t, url, 4, 0, speed), rangesNode(t, url, 1, 0, speed)
	var took time.Duration
	var wg sync.WaitGroup
	wg.Go(func() { took = prefetch(t, ranged, "o/"+path) })
	wg.Go(func() { prefetch(t, single, "o/"+path) })
	wg.Wait()
	n := plays() - 1
	t.Logf("4 ranges at speed %v: %d sessions, %v for a %v clip (%.1fx real time)", speed, n, took.Round(time.Millisecond), clip, clip.Seconds()/took.Seconds())
	if n < 2 || n > 4 {
		t.Fatalf("the ranged prefetch at speed %v opened %d sessions at the origin, want 2 to 4", speed, n)
	}
	got, want := trackRTP(t, ranged, "o/"+path), trackRTP(t, single, "o/"+path)
	if len(got) != len(want) || len(want) != 2 {
		t.Fatalf("%d tracks stored from ranges, %d from one pull; want 2", len(got), len(want))
	}
	for tr, w := range want {
		if err := testkit.SameRTP(got[tr], w); err != nil {
			t.Fatalf("track %d from 4 ranges against one pull: %v", tr, err)
		}
	}
	playsAsOrigin(t, "the recording pulled as 4 ranges", ranged.url("o/"+path), direct)
}

// TestRangePrefetchGst: gst-rtsp-server grants no usable Speed (it slows
// its RTP clock by as much); a prefetch pulls the clip as 4 ranges at
// once (each PLAY seeks to a key frame, and gst repeats SPS/PPS and clips
// the first audio frame after a seek), and stores what one pull stores.
func TestRangePrefetchGst(t *testing.T) {
	t.Parallel()
	clip := interop.Clip{Name: "h264-aac-12s.mp4", Video: "h264", Audio: "aac", Length: 12 * time.Second}
	gst := interop.StartGstServer(t, interop.Mount{Path: "clip", Pipeline: clip.Pipeline(clip.Path(t))})
	checkRangePrefetch(t, "rtsp://"+gst.Addr, "clip", gst.URL("clip"), clip.Length, 1, func() int { return gst.Requests("PLAY", "clip") })
}

// rangesClip is what the range tests pull from the built-in origin at
// Speed 2: 24 s, 12 s at one session, time for the split (the ranges'
// sessions are set up once the first session plays) on a heavily loaded
// machine, where a 12 s clip (6 s at Speed 2) was twice over before the
// split in clean-clone runs beside other work (one session, or two at A
// through a filler).
var rangesClip = interop.Clip{Name: "h264-aac-24s.ts", Video: "h264", Audio: "aac", Length: 24 * time.Second}

// clipAt is the clip a range test pulls from the built-in origin at speed.
func clipAt(speed float64) interop.Clip {
	if speed > 1 {
		return rangesClip
	}
	return speedClip
}

// TestRangePrefetchOrigin: the built-in origin is pulled as 4 ranges at
// once, asked for no Speed (speed: 1) and for Speed 2, each range then at
// 2, and stores what one pull stores.
func TestRangePrefetchOrigin(t *testing.T) {
	t.Parallel()
	// Speed 2, not 8, and rangesClip: at 8 a 12 s clip was over before
	// the ranges' sessions were set up, in one loaded run.
	for _, speed := range []float64{1, 2} {
		t.Run(fmt.Sprintf("speed %v", speed), func(t *testing.T) {
			t.Parallel()
			clip := clipAt(speed)
			org := startClipOrigin(t, clip) // its own, to count its PLAYs
			checkRangePrefetch(t, "rtsp://"+org.Addr(), "clip.ts", "rtsp://"+org.Addr()+"/clip.ts", clip.Length, speed, func() int {
				_, plays := org.Sessions("clip.ts")
				return plays
			})
		})
	}
}

// TestRangePrefetchMaxSessions: with max_sessions 1 a prefetch from an
// origin that grants no Speed opens no range beside its one session: it
// takes real time, with one PLAY at the origin.
func TestRangePrefetchMaxSessions(t *testing.T) {
	t.Parallel()
	org := startClipOrigin(t, speedClip)
	n := rangesNode(t, "rtsp://"+org.Addr(), 4, 1, 1)
	took := prefetch(t, n, "o/clip.ts")
	_, plays := org.Sessions("clip.ts")
	t.Logf("max_sessions 1: %v for a %v clip, %d PLAYs", took.Round(time.Millisecond), speedClip.Length, plays)
	if plays != 1 || took < speedClip.Length*9/10 {
		t.Fatalf("max_sessions 1: %d PLAYs at the origin, the prefetch took %v of a %v clip; want 1, at real time", plays, took, speedClip.Length)
	}
}

// TestRangesAfterPlayerLeft: a player starts a fill from an origin that
// grants no Speed and leaves after 2 s; the fill, which complete_on_abandon
// carries on and nobody watches now, pulls the rest as ranges at once and
// stores what one pull stores. While the player watched, one session.
func TestRangesAfterPlayerLeft(t *testing.T) {
	t.Parallel()
	org := startClipOrigin(t, speedClip)
	n, single := rangesNode(t, "rtsp://"+org.Addr(), 4, 0, 1), rangesNode(t, "rtsp://"+org.Addr(), 1, 0, 1)
	var wg sync.WaitGroup
	wg.Go(func() { prefetch(t, single, "o/clip.ts") })
	start := time.Now()
	var plays int
	err := playUntilPacket(t.Context(), n.url("o/clip.ts"), func(*description.Media, *rtp.Packet) bool {
		if time.Since(start) < 2*time.Second {
			_, plays = org.Sessions("clip.ts")
			return false
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	in := waitCompleteAt(t, n, "o/clip.ts")
	took := time.Since(start)
	wg.Wait()
	t.Logf("the player left after 2 s; the fill of the %v clip was complete after %v; %d PLAYs at the origin while it watched (the single pull's included)",
		speedClip.Length, took.Round(time.Millisecond), plays)
	if in.Source != store.SourceOrigin {
		t.Fatalf("filled from %q", in.Source)
	}
	if plays > 2 {
		t.Fatalf("%d PLAYs at the origin while the player watched, want 2: one per node", plays)
	}
	got, want := trackRTP(t, n, "o/clip.ts"), trackRTP(t, single, "o/clip.ts")
	for tr, w := range want {
		if err := testkit.SameRTP(got[tr], w); err != nil {
			t.Fatalf("track %d, ranges after the player left against one pull: %v", tr, err)
		}
	}
	if _, all := org.Sessions("clip.ts"); all < 3 {
		t.Fatalf("%d PLAYs at the origin in all, the single pull's included: no ranges after the player left", all)
	}
}

// TestRangePrefetchJoinedByPlayer: a player that asks for a stream while
// its prefetch pulls ranges at once tails the recording: it gets the
// origin's frames (video and audio), paced at about real time (the range
// being stored holds back 1 s before each cut). From gst-rtsp-server the
// ranges come at real time; from the built-in origin at Speed 2 (slow
// enough that the player joins while they run).
func TestRangePrefetchJoinedByPlayer(t *testing.T) {
	t.Parallel()
	clip := interop.Clip{Name: "h264-aac-12s.mp4", Video: "h264", Audio: "aac", Length: 12 * time.Second}
	gst := interop.StartGstServer(t, interop.Mount{Path: "clip", Pipeline: clip.Pipeline(clip.Path(t))})
	org := startClipOrigin(t, clipAt(2))
	for _, tc := range []struct {
		name, url, path, direct string
		speed                   float64
		length                  time.Duration
		plays                   func() int // PLAYs of the clip at the origin
	}{
		{"gst", "rtsp://" + gst.Addr, "clip", gst.URL("clip"), 1, clip.Length, func() int { return gst.Requests("PLAY", "clip") }},
		{"Speed 2", "rtsp://" + org.Addr(), "clip.ts", "rtsp://" + org.Addr() + "/clip.ts", 2, clipAt(2).Length, func() int {
			_, plays := org.Sessions("clip.ts")
			return plays
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := rangesNode(t, tc.url, 4, 0, tc.speed)
			var wg sync.WaitGroup
			var took time.Duration
			wg.Go(func() { took = prefetch(t, n, "o/"+tc.path) })
			testkit.Eventually(t, 10*time.Second, "the prefetch pulls 4 ranges", func() bool { return tc.plays() >= 4 })
			viaNode := playsAsOrigin(t, "a player of a prefetch pulling ranges", n.url("o/"+tc.path), tc.direct)
			wg.Wait()
			played := viaNode.Exited.Sub(viaNode.Started)
			t.Logf("the prefetch took %v; the player joined and ran %v for a %v clip", took.Round(time.Millisecond), played.Round(time.Millisecond), tc.length)
			if played > tc.length+4*time.Second {
				t.Fatalf("the player ran %v for a %v clip", played, tc.length)
			}
		})
	}
}

// TestRangePrefetchViaFiller: node B prefetches a stream whose designated
// filler is node A. B's filler request says nobody watches it (filler
// protocol 1.1.0), so A's fill, held for B only, pulls up to 4 ranges at
// once from the origin (PLAYs there, none from B), each at the Speed
// granted, and B's copy, tailed from A, holds what a single pull stores.
func TestRangePrefetchViaFiller(t *testing.T) {
	t.Parallel()
	const ranges = 4
	for _, tc := range []struct {
		name  string
		speed float64
	}{{"no Speed", 1}, {"Speed 2", 2}} { // 2, not 8: as TestRangePrefetchOrigin
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clip := clipAt(tc.speed)
			ts, err := os.ReadFile(clip.Path(t))
			if err != nil {
				t.Fatal(err)
			}
			org, a, b, path := fillerPair(t, ts, tc.speed, ranges)
			single := rangesNode(t, "rtsp://"+org.Addr(), 1, 0, tc.speed)

			var wg sync.WaitGroup
			var took time.Duration
			wg.Go(func() { took = prefetch(t, b, path) })
			wg.Go(func() { prefetch(t, single, path) })
			wg.Wait()
			_, plays := org.Sessions(strings.TrimPrefix(path, "o/"))
			t.Logf("B's prefetch of %s through A: %v for a %v clip; %d PLAYs at the origin, the single pull's included",
				path, took.Round(time.Millisecond), clip.Length, plays)
			if in, err := b.Stream(path); err != nil || in.Source != a.PeerID() {
				t.Fatalf("B filled from %q (%v), want A %s", in.Source, err, a.PeerID())
			}
			got, want := trackRTP(t, b, path), trackRTP(t, single, path)
			if len(got) != len(want) || len(want) != 2 {
				t.Fatalf("%d tracks at B, %d from one pull; want 2", len(got), len(want))
			}
			for tr, w := range want {
				if err := testkit.SameRTP(got[tr], w); err != nil {
					t.Fatalf("track %d at B (A's ranges) against one pull: %v", tr, err)
				}
			}
			// A splits what is left of the clip when its first session
			// starts, into at most 4 ranges of 2 s or more (rtspedge's
			// rangeMin): on a loaded machine that may be 3 or 2. One
			// session at A (the request's flag lost) makes 2 PLAYs.
			if plays < 3 || plays > ranges+1 {
				t.Fatalf("%d PLAYs at the origin, want 3 to %d: A's ranges and the single pull", plays, ranges+1)
			}
		})
	}
}

// fillerPair is an origin serving clip ts (as clip.ts and clip0.ts to
// clip15.ts) and two mesh nodes A and B (admin API on) whose origin "o"
// it is, asked for speed and pulled by ranges sessions at once, with the
// path of a stream whose designated filler is A.
func fillerPair(t *testing.T, ts []byte, speed float64, ranges int) (org *origin.Origin, a, b *testNode, path string) {
	t.Helper()
	media := map[string][]byte{"clip.ts": ts}
	for i := range 16 {
		media[fmt.Sprintf("clip%d.ts", i)] = ts
	}
	org = startOrigin(t, func(c *origin.Config) { c.Media = media })
	mod := func(c *node.Config) {
		c.Admin.Listen = "127.0.0.1:0"
		c.Origins[0].Speed, c.Origins[0].RangeParallelism = &speed, &ranges
	}
	a = meshNode(t, org, mod)
	b = meshNode(t, org, mod, a)
	waitMembers(t, []*testNode{a, b}, 2)
	return org, a, b, filledBy(t, org, []*testNode{a, b}, a, "o/clip.ts", "o/clip%d.ts")
}

// TestRangesViaFillerAfterPlayerLeft: a player on B starts a fill of a
// stream whose designated filler is A, and leaves after 2 s; B's fill,
// which complete_on_abandon carries on and nobody watches now, tells A so
// over the filler protocol's hold, and A's fill pulls the rest as ranges
// at once. While the player watched, A had one session at the origin;
// B's copy holds what a single pull stores.
func TestRangesViaFillerAfterPlayerLeft(t *testing.T) {
	t.Parallel()
	ts, err := os.ReadFile(speedClip.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	org, a, b, path := fillerPair(t, ts, 1, 4)
	name := strings.TrimPrefix(path, "o/")
	start := time.Now()
	var plays int
	err = playUntilPacket(t.Context(), b.url(path), func(*description.Media, *rtp.Packet) bool {
		if time.Since(start) < 2*time.Second {
			_, plays = org.Sessions(name)
			return false
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	in := waitCompleteAt(t, b, path)
	took := time.Since(start)
	_, after := org.Sessions(name)
	t.Logf("the player on B left after 2 s; B's copy of the %v clip was complete after %v; %d PLAYs at the origin while it watched, %d in all",
		speedClip.Length, took.Round(time.Millisecond), plays, after)
	if in.Source != a.PeerID() {
		t.Fatalf("B filled from %q, want A %s", in.Source, a.PeerID())
	}
	if plays != 1 || after < 2 {
		t.Fatalf("%d PLAYs at the origin while the player watched (want A's 1), %d in all (want A's ranges after)", plays, after)
	}
	single := rangesNode(t, "rtsp://"+org.Addr(), 1, 0, 1)
	prefetch(t, single, path)
	got, want := trackRTP(t, b, path), trackRTP(t, single, path)
	for tr, w := range want {
		if err := testkit.SameRTP(got[tr], w); err != nil {
			t.Fatalf("track %d at B, A's ranges after the player left, against one pull: %v", tr, err)
		}
	}
}
