package node_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// prefetchClip is the 90 s recording the prefetch benchmark fills.
var prefetchClip = interop.Clip{Name: "h264-aac-90s.ts", Video: "h264", Audio: "aac", Length: 90 * time.Second}

// BenchmarkPrefetch90s: `rtspmesh prefetch` of a 90 s recording from the
// built-in origin (POST /api/v1/prefetch, then until the recording is
// complete), on a fresh node each time. It reports the fill's time and how
// many times faster than real time it was: at origins[].speed 8 (the
// default) with origins[].range_parallelism 5 (the default: 5 ranges at
// once, each at Speed 8) and 1 (Speed alone, one session), at 16 (the
// origin allowing it), and at 8 with origins[].rate_limit at twice the
// clip's bitrate (which leaves room for one session at 2x: no ranges). (At
// speed 1 and range_parallelism 1, what every fill did before, it takes
// the clip's 90 s: 90.02 s measured; left out to keep make bench short.)
// Then the same clip from gst-rtsp-server, which grants no usable Speed
// (it slows its RTP clock by as much: the first session is dropped after
// its speed check), so the prefetch pulls ranges at real time each:
// range_parallelism 4 and 5 (the default).
func BenchmarkPrefetch90s(b *testing.B) {
	ts, err := os.ReadFile(prefetchClip.Path(b))
	if err != nil {
		b.Fatal(err)
	}
	org := startOrigin(b, func(c *origin.Config) {
		c.Media = map[string][]byte{"clip.ts": ts}
		c.MaxSpeed = 16
	})
	bitrate := sdpBitrate(b, org, "clip.ts")
	for _, bc := range []struct {
		name      string
		speed     float64
		ranges    int
		rateLimit int64
	}{
		{"speed=8", 8, node.DefaultRangeParallelism, 0},
		{"speed=8/range_parallelism=1", 8, 1, 0},
		{"speed=16", 16, node.DefaultRangeParallelism, 0},
		{"speed=8/rate_limit=2x", 8, node.DefaultRangeParallelism, 2 * bitrate},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var took time.Duration
			for b.Loop() {
				took += prefetchOnce(b, "rtsp://"+org.Addr(), func(c *node.Config) {
					c.Origins[0].Speed = &bc.speed
					c.Origins[0].RangeParallelism = &bc.ranges
					c.Origins[0].RateLimit = node.Bitrate(bc.rateLimit)
				})
			}
			reportPrefetch(b, took)
		})
	}
	clip := interop.Clip{Name: "h264-aac-90s.mp4", Video: "h264", Audio: "aac", Length: prefetchClip.Length}
	gst := interop.StartGstServer(b, interop.Mount{Path: "clip.ts", Pipeline: clip.Pipeline(clip.Path(b))})
	for _, ranges := range []int{4, 5} {
		b.Run(fmt.Sprintf("gst/range_parallelism=%d", ranges), func(b *testing.B) {
			var took time.Duration
			for b.Loop() {
				took += prefetchOnce(b, "rtsp://"+gst.Addr, func(c *node.Config) { c.Origins[0].RangeParallelism = &ranges })
			}
			reportPrefetch(b, took)
		})
	}
}

// reportPrefetch reports the mean time of b.N prefetches that took took
// in all, and how many times faster than real time they were.
func reportPrefetch(b *testing.B, took time.Duration) {
	per := took / time.Duration(b.N)
	b.ReportMetric(per.Seconds(), "s/fill")
	b.ReportMetric(prefetchClip.Length.Seconds()/per.Seconds(), "x-realtime")
}

// prefetchOnce starts a node (not timed) whose origin "o" is url,
// prefetches clip.ts through its admin API and returns how long it took
// until the recording was complete.
func prefetchOnce(b *testing.B, url string, mod func(*node.Config)) time.Duration {
	b.StopTimer()
	cfg := nodeConfig(b, nil)
	cfg.Origins = []node.Origin{{Name: "o", URL: url}}
	cfg.Mesh.Enabled = false
	cfg.Admin.Listen = "127.0.0.1:0"
	mod(&cfg)
	n := startNode(b, cfg)
	b.StartTimer()
	took := prefetch(b, n, "o/clip.ts")
	b.StopTimer()
	n.stop()
	b.StartTimer()
	return took
}
