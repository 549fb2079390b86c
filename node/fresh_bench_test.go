package node_test

import (
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/rtspmesh/rtspmesh/node"
)

// BenchmarkRevalidationOnHit: what a revalidation adds to a player's
// DESCRIBE of a stored recording. One node revalidates on every play
// (max_age 0s; the built-in origin answers 304), another serves the same
// recording fresh; each op times a DESCRIBE on each and one straight to
// the origin. It reports medians: the extra time of a revalidating hit
// over a fresh one, and the origin round trip it contains (the target is
// extra ≤ round trip + 5 ms on loopback).
func BenchmarkRevalidationOnHit(b *testing.B) {
	org := startOrigin(b, nil)
	conf := func(age time.Duration) node.Config {
		cfg := nodeConfig(b, org)
		cfg.Origins[0].MaxAge = maxAge(age)
		// One loopback client asks many times a second.
		cfg.Fills.DescribesPerAddress, cfg.Fills.DescribesPerConnection = 1_000_000, 1_000_000
		return cfg
	}
	stale, fresh := startNode(b, conf(0)), startNode(b, conf(time.Hour))
	for _, n := range []*testNode{stale, fresh} {
		if err := firstPacket(b.Context(), n.url(samplePath)); err != nil {
			b.Fatal(err)
		}
		waitCompleteAt(b, n, samplePath)
	}
	timed := func(url string) time.Duration {
		start := time.Now()
		if res := describeWith(b, url, nil); res.StatusCode != base.StatusOK {
			b.Fatalf("DESCRIBE %s: %d", url, res.StatusCode)
		}
		return time.Since(start)
	}
	var extra, rtt []time.Duration
	for b.Loop() {
		f := timed(fresh.url(samplePath))
		s := timed(stale.url(samplePath))
		o := timed("rtsp://" + org.Addr() + "/sample.ts")
		extra, rtt = append(extra, s-f), append(rtt, o)
	}
	if st := stale.FreshStats(); st.NotModified == 0 || st.Changed != 0 {
		b.Fatalf("revalidations: %+v, want 304s only", st)
	}
	b.ReportMetric(median(extra).Seconds()*1e3, "revalidate-extra-ms")
	b.ReportMetric(median(rtt).Seconds()*1e3, "origin-rtt-ms")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
