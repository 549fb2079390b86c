package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/rtspmesh/rtspmesh/mesh
BenchmarkPeerFill-2   	       1	1200000000 ns/op	       152.0 MB	       180.0 fill-MB/s	         0.7000 fill/store	       257.1 store-MB/s	 1024 B/op	  10 allocs/op
BenchmarkSeal
BenchmarkSeal/sign
BenchmarkSeal/sign-2  	       1	     25000 ns/op	     128 B/op	       2 allocs/op
--- FAIL: BenchmarkMeshFirstSegment
    bench_test.go:10: lookups failed
pkg: github.com/rtspmesh/rtspmesh/node
BenchmarkFillerHop/vod-2   	       1	1 ns/op	 0.2399 ms/mesh-rtt	 4.9 ms/filler-extra
BenchmarkFillerHop/live-2  	       1	1 ns/op	 0.30 ms/mesh-rtt	 5.6 ms/filler-extra
BenchmarkNodeIdle-2   	       1	1 ns/op	 30.3 node-RSS-MiB
`

func TestTable(t *testing.T) {
	results, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err = write(&out, results)
	if err == nil || !strings.Contains(err.Error(), "BenchmarkMeshFirstSegment") {
		t.Errorf("a failed benchmark: error %v, want one naming it", err)
	}
	table := out.String()
	for _, want := range []string{
		"| mesh | BenchmarkPeerFill | fill/store | 0.7 | ≥ 0.8 | **not met** |",
		"| mesh | BenchmarkPeerFill | store-MB/s | 257.1 |  |  |",
		"| mesh | BenchmarkSeal/sign | ns/op | 25000 |  |  |",
		"| mesh | BenchmarkSeal/sign | allocs/op | 2 |  |  |",
		"| mesh | BenchmarkMeshFirstSegment | | **failed** | | |",
		"| node | BenchmarkFillerHop/vod | ms/filler-extra | 4.90 | ≤ 5.24 (ms/mesh-rtt + 5) | met |",
		"| node | BenchmarkFillerHop/live | ms/filler-extra | 5.60 | ≤ 5.30 (ms/mesh-rtt + 5) | **not met** |",
		"| node | BenchmarkNodeIdle | node-RSS-MiB | 30.30 | ≤ 40 | met |",
		"targets: 2 met, 3 not met (BenchmarkPeerFill fill-MB/s; BenchmarkPeerFill fill/store; BenchmarkFillerHop/live ms/filler-extra)",
	} {
		if !strings.Contains(table, want+"\n") {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "| BenchmarkPeerFill | ns/op") || strings.Contains(table, "| BenchmarkSeal |") {
		t.Errorf("a run's length or a parent benchmark shown:\n%s", table)
	}
}

func TestNoResults(t *testing.T) {
	results, err := parse(strings.NewReader("ok  \tgithub.com/rtspmesh/rtspmesh/store\t0.1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := write(&strings.Builder{}, results); err == nil {
		t.Error("no benchmark lines: no error")
	}
}

func TestSecondRun(t *testing.T) {
	first, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	second, err := parse(strings.NewReader("pkg: github.com/rtspmesh/rtspmesh/node\nBenchmarkNodeIdle-2 1 1 ns/op 33.5 node-RSS-MiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	_ = write(&out, first, second...)
	for _, want := range []string{
		"| node | BenchmarkNodeIdle | node-RSS-MiB | 30.30 (33.50) | ≤ 40 | met |",
		"| mesh | BenchmarkPeerFill | fill/store | 0.7 | ≥ 0.8 | **not met** |",
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
