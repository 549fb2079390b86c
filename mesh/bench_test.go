package mesh

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/store"
)

// BenchmarkPeerFill copies a complete 10-minute 2 Mbit/s recording (~150 MB)
// from node A to node B over loopback (TCP, TLS 1.3 with AES-GCM as
// negotiated, yamux), both stores on disk, and compares it with B's store
// appending the same segments directly, in the same run.
//
//	fill-MB/s    the peer fill, OpenFill to the end of Run: A reads each
//	             segment from its store and sends it; B verifies its seal
//	             (Ed25519), its hash (SHA-256) and its encoding, and stores it
//	store-MB/s   B's store alone: Writer.CheckOwned (SHA-256, decoding) and
//	             AppendChecked of the same segments held in memory, each in
//	             a buffer of its own as a fill's are; no network, no seals
//	fill/store   the ratio of the two (target ≥ 0.8)
//	append-MB/s  A's Writer.Append of the packets (the origin-fill path)
//
// Both variants measure the store alone alike (benchPeerFill): in the
// receiver's process, into the store the fills go to, after an untimed
// fill, in rounds alternated with the fills. Here sender and receiver
// share this process (its heap, its scheduler and the machine's cores);
// BenchmarkPeerFillChild puts the sender in a child process.
//
// On this machine's 2 cores a fill is bounded by its CPU as much as by its
// pipeline: per 152 MB the store alone took 0.49–0.60 s of CPU, a fill
// 0.85–0.93 s with the sender in this process (0.71–0.85 s in the receiver's
// alone; 0.76–0.90 and 0.65–0.70 after the changes below), the rest of it in
// TLS (AES-GCM both ways, a write per 16 KiB record), yamux's copies, the
// sender's reads of its store and their CRC checks, and the seals (Ed25519,
// 0.03 s). So a fill reads each segment into a buffer the store gives back
// once stored (store.Writer.SetSpare; it had cost an allocation, zeroing and
// new heap pages per segment, 0.04 s), and queues up to 11 segments between
// the network, the checks and the store when it is one of the first 4
// fills at once (fill_client.go, deepPipeline; limits.go). A/B of 2026-12-02 04:56, four
// alternated runs each, load 2–4 from other work (fill-MB/s, store-MB/s,
// fill/store, medians): before 190, 307, 0.66 (0.56–0.71); after 257, 309,
// 0.81 (0.79–0.89); the child variant before 212, 295, 0.68 (0.64–0.75),
// after 246, 318, 0.77 (0.74–0.80). Tried and dropped: a 4 MiB yamux window
// from the start (no gain measured; yamux would not account the memory),
// AppendChecked not waiting for its commit (no gain measured, and it changes
// what the store promises).
func BenchmarkPeerFill(b *testing.B) {
	b.ReportAllocs()
	stA, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer stA.Close()
	a := startNode(b, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, stA)
	key := testKey("bench")
	start := time.Now()
	recordBench(b, stA, key)
	appendTook := time.Since(start)
	mb := benchPeerFill(b, providerOf(a), key)
	b.ReportMetric(mb/appendTook.Seconds(), "append-MB/s")
}

// recordBench stores BenchmarkPeerFill's recording of key in st.
func recordBench(t testing.TB, st *store.Store, key string) {
	w, err := st.Create(testManifest(key))
	if err != nil {
		t.Fatal(err)
	}
	record(t, w, &packetSource{size: 1200, rate: 2_000_000 / 8}, 10*time.Minute)
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
}

// fillSenderEnv names the key that TestPeerFillSender, run as a child
// process, records and serves.
const fillSenderEnv = "RTSPMESH_BENCH_FILL_SENDER"

// TestPeerFillSender is BenchmarkPeerFillChild's sender: with
// fillSenderEnv set it stores the benchmark's recording on disk, serves it
// on a loopback mesh node, prints "ready <peer id> <address>" and runs
// until its stdin closes. It does nothing in a normal test run.
func TestPeerFillSender(t *testing.T) {
	key := os.Getenv(fillSenderEnv)
	if key == "" {
		return
	}
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := startNode(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, st)
	recordBench(t, st, key)
	stop, err := testkit.ProfileCPU("RTSPMESH_BENCH_SENDER_CPUPROFILE")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	fmt.Println("ready", a.ID(), a.Addrs()[0])
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// BenchmarkPeerFillChild is BenchmarkPeerFill with node A, the sender, in
// a child process (this test binary again): this process holds the
// receiver alone, its heap and its scheduler apart from the sender's (both
// still share the machine's cores). No append-MB/s.
func BenchmarkPeerFillChild(b *testing.B) {
	b.ReportAllocs()
	key := testKey("bench-child")
	c := testkit.StartChild(b, "^TestPeerFillSender$", fillSenderEnv+"="+key)
	line, err := c.Line(5 * time.Minute)
	if err != nil {
		b.Fatalf("sender not ready: %v\n%s", err, testkit.CrashReport(c.Stderr()))
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ready" {
		b.Fatalf("sender: %q", line)
	}
	benchPeerFill(b, Provider{ID: f[1], Addrs: f[2:]}, key)
}

// benchPeerFill measures fills of key from p into a new on-disk store
// against that store's own appends of the same segments, and reports both;
// it returns the segments' size in MB.
//
// A first fill, untimed, gives the segments the store appends alone, and
// takes the costs of a first use out of the rounds in both variants alike:
// the connection, the sender's first reads, this process's heap growing to
// hold the recording, the store's first value-log files.
func benchPeerFill(b *testing.B, p Provider, key string) float64 {
	stB, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer stB.Close()
	nb := startNode(b, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, stB)
	m := peerFill(b, nb, p, key, key+"-first")
	segs := make([][]byte, len(m.Segments))
	hashes := make([]store.Hash, len(m.Segments))
	var size int64
	for i, si := range m.Segments {
		if segs[i], hashes[i], err = stB.Segment(m.Key, si.Index); err != nil {
			b.Fatal(err)
		}
		size += int64(len(segs[i]))
	}
	if err := stB.Delete(m.Key); err != nil {
		b.Fatal(err)
	}

	// Rounds alternate the two measurements so that load from elsewhere on
	// the machine hits both alike; the medians are reported. The store
	// alone is a serial loop behind Badger's one write goroutine, so each
	// of that goroutine's stalls adds to it in full, where a fill's
	// pipeline hides part of it: a value-log rotation (Badger msyncs the
	// 64 MiB file: 40-80 ms), and the kernel zero-filling the next 8 MiB of
	// the sparse value-log file on a page fault (this machine's read-ahead;
	// 1-30 ms each, by how fresh the memory it gets is). A round of 152 MB
	// met 2 or 3 rotations and 18 or 19 such faults, and the median of 3
	// rounds moved with where they fell (store-alone 230-316 MB/s while the
	// fill held 213-243). The store now does both off Badger's goroutine
	// (store/writeback_linux.go); and the rounds are 7, every other one
	// filling first, so that neither measurement always follows the other
	// (the value log's position, the heap the other left).
	const rounds = 7
	var fillMBps, storeMBps []float64
	mb := float64(size) / 1e6
	b.ResetTimer()
	for i := range b.N * rounds {
		var direct, fill string
		if i%2 == 0 {
			direct = storeAlone(b, stB, segs, hashes, fmt.Sprintf("%s-direct-%d", key, i), mb, &storeMBps)
			fill = timedFill(b, nb, p, key, fmt.Sprintf("%s-fill-%d", key, i), m, mb, &fillMBps)
		} else {
			fill = timedFill(b, nb, p, key, fmt.Sprintf("%s-fill-%d", key, i), m, mb, &fillMBps)
			direct = storeAlone(b, stB, segs, hashes, fmt.Sprintf("%s-direct-%d", key, i), mb, &storeMBps)
		}
		// Both copies go: the next round starts from the same store size.
		b.StopTimer()
		for _, k := range []string{direct, fill} {
			if err := stB.Delete(k); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.Logf("%d segments of %.0f KiB on average; fill-MB/s: the sender reads each from its store and writes it (TLS, yamux, loopback TCP), "+
		"this process verifies its seal (Ed25519), hash (SHA-256) and encoding and stores it; store-MB/s: this process's store "+
		"alone, CheckOwned (SHA-256, encoding) and AppendChecked of the same segments from memory; medians of %d rounds each, alternated: fill %.0f, store %.0f MB/s",
		len(segs), float64(size)/float64(len(segs))/1024, rounds, fillMBps, storeMBps)
	fill, direct := median(fillMBps), median(storeMBps)
	b.ReportMetric(fill, "fill-MB/s")
	b.ReportMetric(direct, "store-MB/s")
	b.ReportMetric(fill/direct, "fill/store")
	b.ReportMetric(mb, "MB")
	return mb
}

// storeAlone appends segs (their hashes; mb MB in all) to st as a new
// recording named as, as a fill's store would, and appends the rate to
// mbps; it returns the recording's key.
func storeAlone(b *testing.B, st *store.Store, segs [][]byte, hashes []store.Hash, as string, mb float64, mbps *[]float64) string {
	w, err := st.Create(testManifest(as))
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	owned := make([][]byte, len(segs)) // CheckOwned keeps them, as a fill's
	for j := range segs {
		owned[j] = slices.Clone(segs[j])
	}
	b.StartTimer()
	t0 := time.Now()
	for j := range owned {
		c, err := w.CheckOwned(owned[j], hashes[j])
		if err != nil {
			b.Fatal(err)
		}
		if err := w.AppendChecked(c, store.Seal{}); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Finish(store.StateComplete); err != nil {
		b.Fatal(err)
	}
	*mbps = append(*mbps, mb/time.Since(t0).Seconds())
	return w.Manifest().Key
}

// timedFill fills key from p into nd's store as a recording named as,
// checks it against want (mb MB of segments) and appends the rate to mbps;
// it returns the recording's key.
func timedFill(b *testing.B, nd *testNode, p Provider, key, as string, want store.Manifest, mb float64, mbps *[]float64) string {
	t0 := time.Now()
	got := peerFill(b, nd, p, key, as)
	*mbps = append(*mbps, mb/time.Since(t0).Seconds())
	if len(got.Segments) != len(want.Segments) || got.Bytes != want.Bytes {
		b.Fatalf("copy has %d segments %d bytes, the first %d, %d", len(got.Segments), got.Bytes, len(want.Segments), want.Bytes)
	}
	return got.Key
}

// peerFill fills key from p into nd's store as a recording named as, and
// returns its manifest.
func peerFill(b *testing.B, nd *testNode, p Provider, key, as string) store.Manifest {
	ctx := context.Background()
	pf, err := nd.OpenFill(ctx, p, key, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer pf.Close()
	m := pf.Manifest()
	m.Key = as // the store keeps every copy apart
	w, err := nd.st.Create(m)
	if err != nil {
		b.Fatal(err)
	}
	if err := pf.Run(ctx, w); err != nil {
		b.Fatal(err)
	}
	if err := w.Finish(store.StateComplete); err != nil {
		b.Fatal(err)
	}
	return w.Manifest()
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

// BenchmarkCheckpoint is what a live checkpoint adds on the first relay
// hop, per write of 8 packets of 1200 bytes (about a video frame at
// 2 Mbit/s): the sender hashes the packets' records and signs; the
// receiver verifies the signature and hashes each packet as it comes.
func BenchmarkCheckpoint(b *testing.B) {
	k := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	s := &signer{priv: k}
	copy(s.pub[:], k.Public().(ed25519.PublicKey))
	m := testManifest(testKey("checkpoint"))
	d := HeaderDigest(&m)
	ps := &packetSource{size: 1200, rate: 250_000}
	var recs [][]byte
	for range 8 {
		p := ps.next()
		recs = append(recs, store.AppendRecord(nil, &p))
	}
	entries := func() []checkpointEntry {
		es := make([]checkpointEntry, len(recs))
		for i, r := range recs {
			es[i] = checkpointEntry{PN: uint64(i), Hash: sha256.Sum256(r)}
		}
		return es
	}
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = appendCheckpoint(nil, s, d, entries())
		}
	})
	raw := appendCheckpoint(nil, s, d, entries())
	tr := &trust{any: true}
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.verifyCheckpoint(d, raw); err != nil {
				b.Fatal(err)
			}
			_ = entries()
		}
	})
}
