package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// prefetchClip is the 90 s recording the prefetch benchmark fills.
var prefetchClip = interop.Clip{Name: "h264-aac-90s.ts", Video: "h264", Audio: "aac", Length: 90 * time.Second}

// BenchmarkPrefetch90s: `rtspmesh prefetch` of a 90 s recording from the
// built-in origin (POST /api/v1/prefetch, then until the recording is
// complete), on a fresh node each time. It reports the fill's time and how
// many times faster than real time it was: at origins[].speed 8 (the
// default) and 16 (the origin allowing it), and at 8 with
// origins[].rate_limit at twice the clip's bitrate. (At speed 1, what every
// fill did before, it takes the clip's 90 s: 90.02 s measured; left out to
// keep make bench short.)
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
		rateLimit int64
	}{
		{"speed=8", 8, 0},
		{"speed=16", 16, 0},
		{"speed=8/rate_limit=2x", 8, 2 * bitrate},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var took time.Duration
			for b.Loop() {
				took += prefetchOnce(b, org, func(c *node.Config) {
					c.Origins[0].Speed = &bc.speed
					c.Origins[0].RateLimit = node.Bitrate(bc.rateLimit)
				})
			}
			per := took / time.Duration(b.N)
			b.ReportMetric(per.Seconds(), "s/fill")
			b.ReportMetric(prefetchClip.Length.Seconds()/per.Seconds(), "x-realtime")
		})
	}
}

// prefetchOnce starts a node (not timed), prefetches clip.ts through its
// admin API and returns how long it took until the recording was complete.
func prefetchOnce(b *testing.B, org *origin.Origin, mod func(*node.Config)) time.Duration {
	b.StopTimer()
	cfg := nodeConfig(b, org)
	cfg.Mesh.Enabled = false
	cfg.Admin.Listen = "127.0.0.1:0"
	mod(&cfg)
	n := startNode(b, cfg)
	b.StartTimer()
	start := time.Now()
	body, _ := json.Marshal(node.PrefetchRequest{Path: "o/clip.ts"})
	res, err := http.Post(fmt.Sprintf("http://%s/api/v1/prefetch", n.AdminAddr()), "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		b.Fatalf("prefetch: %s", res.Status)
	}
	testkit.Eventually(b, 3*time.Minute, "the prefetch is complete", func() bool {
		in, err := n.Stream("o/clip.ts")
		return err == nil && in.State == store.StateComplete
	})
	took := time.Since(start)
	b.StopTimer()
	n.stop()
	b.StartTimer()
	return took
}
