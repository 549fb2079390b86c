package mesh

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// BenchmarkPeerFill copies a complete 10-minute 2 Mbit/s recording (~150 MB)
// from node A to node B over loopback (TCP, Noise, yamux), both stores on
// disk, and compares it with B's store appending the same segments directly.
//
//	fill-MB/s        the peer fill, OpenFill to the end of Run
//	store-MB/s       B's Writer.AppendSegment of the same segments, no network
//	fill/store       the ratio of the two (target ≥ 0.8)
//	append-MB/s      A's Writer.Append of the packets (the origin-fill path)
func BenchmarkPeerFill(b *testing.B) {
	b.ReportAllocs()
	stA, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer stA.Close()
	stB, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer stB.Close()
	a := startNode(b, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, stA)
	nb := startNode(b, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, stB)

	key := testKey("bench")
	w, err := stA.Create(testManifest(key))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	record(b, w, &packetSource{size: 1200, rate: 2_000_000 / 8}, 10*time.Minute)
	if err := w.Finish(store.StateComplete); err != nil {
		b.Fatal(err)
	}
	appendTook := time.Since(start)
	src, _ := stA.Manifest(key)
	var size int64
	segs := make([][]byte, len(src.Segments))
	hashes := make([]store.Hash, len(src.Segments))
	for i, si := range src.Segments {
		segs[i], hashes[i], err = stA.Segment(key, si.Index)
		if err != nil {
			b.Fatal(err)
		}
		size += int64(len(segs[i]))
	}

	// Rounds alternate the two measurements so that load from elsewhere on
	// the machine hits both alike; the medians are reported.
	const rounds = 3
	var fillMBps, storeMBps []float64
	mb := float64(size) / 1e6
	b.ResetTimer()
	for i := range b.N * rounds {
		// The store alone.
		wd, err := stB.Create(testManifest(fmt.Sprintf("%s-direct-%d", key, i)))
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		for j := range segs {
			if err := wd.AppendSegment(segs[j], hashes[j]); err != nil {
				b.Fatal(err)
			}
		}
		if err := wd.Finish(store.StateComplete); err != nil {
			b.Fatal(err)
		}
		storeMBps = append(storeMBps, mb/time.Since(t0).Seconds())

		// The peer fill.
		t0 = time.Now()
		ctx := context.Background()
		pf, err := nb.OpenFill(ctx, providerOf(a), key, 0)
		if err != nil {
			b.Fatal(err)
		}
		m := pf.Manifest()
		m.Key = fmt.Sprintf("%s-fill-%d", key, i) // B keeps every copy apart
		wf, err := stB.Create(m)
		if err != nil {
			b.Fatal(err)
		}
		if err := pf.Run(ctx, wf); err != nil {
			b.Fatal(err)
		}
		pf.Close()
		if err := wf.Finish(store.StateComplete); err != nil {
			b.Fatal(err)
		}
		fillMBps = append(fillMBps, mb/time.Since(t0).Seconds())
		if got := wf.Manifest(); len(got.Segments) != len(segs) || got.Bytes != src.Bytes {
			b.Fatalf("copy has %d segments %d bytes, source %d, %d", len(got.Segments), got.Bytes, len(segs), src.Bytes)
		}
		// Both copies go: the next round starts from the same store size.
		b.StopTimer()
		for _, k := range []string{wd.Manifest().Key, m.Key} {
			if err := stB.Delete(k); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	fill, direct := median(fillMBps), median(storeMBps)
	b.ReportMetric(fill, "fill-MB/s")
	b.ReportMetric(direct, "store-MB/s")
	b.ReportMetric(fill/direct, "fill/store")
	b.ReportMetric(mb/appendTook.Seconds(), "append-MB/s")
	b.ReportMetric(mb, "MB")
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// BenchmarkMeshFirstSegment runs a 20-node mesh in which node 0 holds the
// streams, and measures at every other node the time from the start of
// FindProviders to the first segment stored from node 0 (OpenFill, Run).
//
//	ms/first-segment  median; p90 and max alongside
//	lookup-%          lookups that found node 0 (target 100)
func BenchmarkMeshFirstSegment(b *testing.B) {
	b.ReportAllocs()
	const nodes, streams = 20, 3
	mesh := startMesh(b, nodes, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	holder := mesh[0]
	var keys []string
	for range streams {
		key := testKey("mesh")
		makeRecording(b, holder.st, key, 5*time.Second)
		if err := holder.Provide(b.Context(), key); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key)
	}

	var lat, finds []time.Duration
	lookups, found := 0, 0
	b.ResetTimer()
	for i := range b.N {
		for k, key := range keys {
			for _, nd := range mesh[1:] {
				lookups++
				d, find, ok := firstSegment(b, nd, holder, key, fmt.Sprintf("%d-%d", i, k))
				finds = append(finds, find)
				if ok {
					found++
					lat = append(lat, d)
				}
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(quantileMs(lat, 0.5), "ms/first-segment")
	b.ReportMetric(quantileMs(lat, 0.9), "p90-ms")
	b.ReportMetric(quantileMs(lat, 1), "max-ms")
	b.ReportMetric(quantileMs(finds, 0.5), "find-ms")
	b.ReportMetric(100*float64(found)/float64(lookups), "lookup-%")
}

func quantileMs(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return float64(ds[min(int(q*float64(len(ds))), len(ds)-1)].Microseconds()) / 1000
}

// firstSegment resolves key at nd and fills it until the first segment is
// stored. It returns that time and the time FindProviders took; false when
// the lookup did not find the holder.
func firstSegment(b *testing.B, nd, holder *testNode, key, suffix string) (time.Duration, time.Duration, bool) {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	t0 := time.Now()
	ps, err := nd.FindProviders(ctx, key)
	find := time.Since(t0)
	if err != nil || len(ps) == 0 || ps[0].ID != holder.ID() {
		return 0, find, false
	}
	pf, err := nd.OpenFill(ctx, ps[0], key, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer pf.Close()
	m := pf.Manifest()
	m.Key = key + "-" + suffix
	w, err := nd.st.Create(m)
	if err != nil {
		b.Fatal(err)
	}
	first := make(chan time.Duration, 1)
	pf.onSegment = func(uint32) {
		select {
		case first <- time.Since(t0):
			cancel()
		default:
		}
	}
	_ = pf.Run(ctx, w)
	select {
	case d := <-first:
		return d, find, true
	default:
		b.Fatal("fill ended without a segment")
		return 0, find, false
	}
}

// BenchmarkSeal is the provenance cost per segment: the origin-filling
// node signs each sealed segment (header digest included), a receiver
// verifies each seal (the digest is computed once per fill).
func BenchmarkSeal(b *testing.B) {
	k := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	s := &signer{priv: k}
	copy(s.pub[:], k.Public().(ed25519.PublicKey))
	m := testManifest(testKey("seal"))
	si := store.SegmentInfo{Index: 7, Hash: store.Hash{1}}
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.SealSegment(&m, &si, store.Hash{2}); err != nil {
				b.Fatal(err)
			}
		}
	})
	seal, _ := s.SealSegment(&m, &si, store.Hash{2})
	tr := &trust{any: true}
	d := HeaderDigest(&m)
	prev := store.Hash{2}
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.verifySeal(d, si.Index, si.Hash, &prev, &seal); err != nil {
				b.Fatal(err)
			}
		}
	})
}
