package node_test

import (
	"sync"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/node"
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
		eventually(b, 10*time.Second, "joined", func() bool { return len(n.Peers()) > 0 })
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
