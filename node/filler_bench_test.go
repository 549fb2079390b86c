package node_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// BenchmarkFillerHop: the latency a designated filler costs. Two meshed
// nodes; on B, the time to the first packet of a cold stream whose filler
// is B itself (a direct origin fill) and of one whose filler is A (B asks
// A over the filler protocol, A opens the origin, B tails A). It reports
// both medians over 10 rounds of fresh streams per iteration, the extra
// latency (target: at most one mesh round trip + 5 ms) and the mesh RTT,
// for live streams and VOD, both relayed packet by packet from the filler's
// open segment (fill protocol 1.4.0; before it a VOD's first packet waited
// for the filler's first sealed segment, about a second).
func BenchmarkFillerHop(b *testing.B) {
	b.Run("live", func(b *testing.B) { fillerHop(b, true) })
	b.Run("vod", func(b *testing.B) { fillerHop(b, false) })
}

func fillerHop(b *testing.B, live bool) {
	const rounds = 10
	var direct, via []time.Duration
	var rtt time.Duration
	for b.Loop() {
		b.StopTimer()
		org := startOrigin(b, func(c *origin.Config) {
			if live {
				c.Live = map[string][]byte{}
			}
			for i := range 8 * rounds {
				if live {
					c.Live[fmt.Sprintf("cold%d.ts", i)] = origin.SampleClip()
				} else {
					c.Media[fmt.Sprintf("cold%d.ts", i)] = origin.SampleClip()
				}
			}
		})
		conf := func(bootstrap ...string) node.Config {
			cfg := nodeConfig(b, org)
			cfg.Mesh.FindTimeout = node.Defaults().Mesh.FindTimeout // as shipped
			cfg.Mesh.Bootstrap = bootstrap
			cfg.Fills.MaxConcurrent, cfg.Fills.MaxPerClient = 256, 256 // every player is 127.0.0.1
			return cfg
		}
		a := startNode(b, conf())
		nb := startNode(b, conf(a.MeshAddrs()...))
		waitMembers(b, []*testNode{a, nb}, 2)
		members := []*testNode{a, nb}
		used := map[string]bool{}
		fresh := func(filler *testNode) string { // a cold stream whose filler is filler
			for i := range 8 * rounds {
				p := fmt.Sprintf("o/cold%d.ts", i)
				if !used[p] && fillerIs(b, org, members, filler, p) {
					used[p] = true
					return p
				}
			}
			b.Fatal("out of cold streams")
			return ""
		}
		b.StartTimer()
		for range rounds {
			for _, c := range []struct {
				filler *testNode
				into   *[]time.Duration
			}{{nb, &direct}, {a, &via}} {
				path := fresh(c.filler)
				start := time.Now()
				if err := firstPacket(b.Context(), nb.url(path)); err != nil {
					b.Fatal(err)
				}
				*c.into = append(*c.into, time.Since(start))
			}
		}
		for _, p := range nb.Peers() {
			rtt = max(rtt, p.RTT)
		}
		nb.stop()
		a.stop()
	}
	med := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(med(direct), "ms/first-packet-direct")
	b.ReportMetric(med(via), "ms/first-packet-via-filler")
	b.ReportMetric(med(via)-med(direct), "ms/filler-extra")
	b.ReportMetric(float64(rtt)/float64(time.Millisecond), "ms/mesh-rtt")
}
