package node_test

import (
	"context"
	"hash/fnv"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// BenchmarkColdStreamWithin10ms: players on three nodes ask for a cold
// stream 10 ms apart, so close that B and C look up providers before A has
// announced its fill. It reports how many origin sessions that makes (1 is
// the goal; the DHT announcement races the lookups), over rounds of fresh
// meshes.
func BenchmarkColdStreamWithin10ms(b *testing.B) {
	const rounds = 5
	var sessions int
	for b.Loop() {
		for range rounds {
			sessions += coldStreamRound(b, 10*time.Millisecond)
		}
	}
	b.ReportMetric(float64(sessions)/float64(rounds*b.N), "origin-sessions/round")
}

// coldStreamRound starts an origin and three meshed nodes, plays on each
// spacing apart and returns the origin sessions it took.
func coldStreamRound(b *testing.B, spacing time.Duration) int {
	b.StopTimer()
	org := startOrigin(b, nil)
	conf := func(bootstrap ...string) node.Config {
		cfg := nodeConfig(b, org)
		cfg.Mesh.FindTimeout = node.Defaults().Mesh.FindTimeout // as shipped
		cfg.Mesh.Bootstrap = bootstrap
		return cfg
	}
	a := startNode(b, conf())
	nb := startNode(b, conf(a.MeshAddrs()...))
	nc := startNode(b, conf(a.MeshAddrs()...))
	for _, n := range []*testNode{nb, nc} {
		testkit.Eventually(b, 10*time.Second, "joined", func() bool { return len(n.Peers()) > 0 })
	}
	b.StartTimer()
	var wg sync.WaitGroup
	for i, n := range []*testNode{a, nb, nc} {
		if i > 0 {
			time.Sleep(spacing) // the spacing under measurement
		}
		wg.Go(func() {
			if err := firstPacket(b.Context(), n.url(samplePath)); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	_, plays := org.Sessions("sample.ts")
	for _, n := range []*testNode{nc, nb, a} {
		n.stop()
	}
	return plays
}

// BenchmarkLiveRelayHop: the delay one relay hop adds to a live stream: the
// arrival of each video packet at a player on B (relaying from A) minus its
// arrival at a player on A (pulling from the origin), median over ~4 s.
func BenchmarkLiveRelayHop(b *testing.B) {
	var delays []time.Duration
	for b.Loop() {
		delays = append(delays, liveHopDelays(b)...)
	}
	if len(delays) == 0 {
		b.Fatal("no packet reached both players")
	}
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2])/float64(time.Millisecond), "ms/hop-median")
	b.ReportMetric(float64(delays[len(delays)*9/10])/float64(time.Millisecond), "ms/hop-p90")
}

func liveHopDelays(b *testing.B) []time.Duration {
	org := startOrigin(b, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	a := startNode(b, nodeConfig(b, org))
	cfg := nodeConfig(b, org)
	cfg.Mesh.Bootstrap = a.MeshAddrs()
	nb := startNode(b, cfg)
	testkit.Eventually(b, 10*time.Second, "joined", func() bool { return len(nb.Peers()) > 0 })
	if err := firstPacket(b.Context(), a.url("o/live")); err != nil {
		b.Fatal(err)
	}
	key, _ := node.CanonicalKey("rtsp://" + org.Addr() + "/live")
	testkit.Eventually(b, 10*time.Second, "a sealed segment on A", func() bool {
		m, err := a.Store().Manifest(key)
		return err == nil && len(m.Segments) > 0
	})

	var mu sync.Mutex
	arrivals := [2]map[uint64]time.Time{{}, {}}
	ctx, cancel := context.WithTimeout(b.Context(), 4*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, n := range []*testNode{a, nb} {
		wg.Go(func() {
			_ = playUntilPacket(ctx, n.url("o/live"), func(m *description.Media, p *rtp.Packet) bool {
				if m.Type != description.MediaTypeVideo {
					return false
				}
				h := fnv.New64a()
				h.Write(p.Payload)
				now := time.Now()
				mu.Lock()
				if _, seen := arrivals[i][h.Sum64()]; !seen {
					arrivals[i][h.Sum64()] = now
				}
				mu.Unlock()
				return false // keep playing until ctx ends
			})
		})
	}
	wg.Wait()
	var delays []time.Duration
	for k, ta := range arrivals[0] {
		if tb, ok := arrivals[1][k]; ok {
			delays = append(delays, tb.Sub(ta))
		}
	}
	return delays
}

// BenchmarkMissFiveSilentProviders: a miss on a node whose mesh has five
// providers of the stream that never answer a fill request: the time from
// the player's DESCRIBE to its first packet, which comes from the origin
// (target ≤ find_timeout + 2.5 s, with find_timeout as shipped).
func BenchmarkMissFiveSilentProviders(b *testing.B) {
	var took []float64
	for b.Loop() {
		b.StopTimer()
		org := startOrigin(b, nil)
		cfg := nodeConfig(b, org)
		cfg.Mesh.FindTimeout = node.Defaults().Mesh.FindTimeout // as shipped
		a := startNode(b, cfg)
		for range 5 {
			silentProvider(b, a.MeshAddrs(), storeKey(b, org))
		}
		cfg = nodeConfig(b, org)
		cfg.Mesh.FindTimeout = node.Defaults().Mesh.FindTimeout
		cfg.Mesh.Bootstrap = a.MeshAddrs()
		nb := startNode(b, cfg)
		testkit.Eventually(b, 10*time.Second, "joined", func() bool { return len(nb.Peers()) > 0 })
		b.StartTimer()
		start := time.Now()
		if err := firstPacket(b.Context(), nb.url(samplePath)); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start).Seconds())
		b.StopTimer()
		nb.stop()
		a.stop()
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2], "first-packet-s")
	b.ReportMetric((time.Duration(node.Defaults().Mesh.FindTimeout) + 2500*time.Millisecond).Seconds(), "target-s")
}
