package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// Benchmarks run a fixed inner workload so that one iteration
// (make bench: -benchtime 1x) gives a meaningful figure; b.ReportMetric is
// the table. They use an on-disk store in a temporary directory.

// benchFeed generates a 2 Mbit/s-like stream without holding it in memory:
// 25 fps, a key frame every 2 s, per frame video packets of 1200–1400 B and
// one audio packet. RTP slices point into one shared random buffer.
type benchFeed struct {
	payload   []byte
	rnd       *rand.Rand
	pn        uint64
	frame     int
	perFrame  int
	audioSize int
}

func newBenchFeed(perFrame, audioSize int) *benchFeed {
	rnd := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(rnd.Uint32())
	}
	return &benchFeed{payload: payload, rnd: rnd, perFrame: perFrame, audioSize: audioSize}
}

// frame calls fn for each packet of the next frame.
func (f *benchFeed) nextFrame(fn func(p Packet) error) error {
	tt := time.Duration(f.frame) * 40 * time.Millisecond
	key := f.frame%50 == 0
	f.frame++
	for i := 0; i < f.perFrame; i++ {
		n := 1200 + f.rnd.IntN(201)
		off := f.rnd.IntN(len(f.payload) - n)
		p := Packet{Track: 0, TT: tt, FT: FrameP, PN: f.pn, RTP: f.payload[off : off+n]}
		if key {
			p.FT = FrameKey
			if i == 0 {
				p.Flags = FlagKeyStart
			}
		}
		f.pn++
		if err := fn(p); err != nil {
			return err
		}
	}
	if f.audioSize > 0 {
		p := Packet{Track: 1, TT: tt + 20*time.Millisecond, PN: f.pn, RTP: f.payload[:f.audioSize]}
		f.pn++
		return fn(p)
	}
	return nil
}

func benchStore(b *testing.B, opts Options) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// fill stores about size bytes of feed under key and returns the RTP bytes written.
func fill(b *testing.B, s *Store, key string, feed *benchFeed, size int64) int64 {
	w, err := s.Create(Manifest{Key: key, Tracks: avTracks()})
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for n < size {
		if err := feed.nextFrame(func(p Packet) error {
			n += int64(len(p.RTP))
			return w.Append(p)
		}); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkAppend: 1200–1400 B packets into a recording, seals included
// (default 256 KiB segments). Target ≥ 200 MB/s.
func BenchmarkAppend(b *testing.B) {
	const size = 256 << 20
	s := benchStore(b, Options{})
	feed := newBenchFeed(8, 0)
	b.ReportAllocs()
	b.ResetTimer()
	var total int64
	for i := 0; i < b.N; i++ {
		total += fill(b, s, fmt.Sprint("append-", i), feed, size)
	}
	b.ReportMetric(float64(total)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkReadSequential: one reader through a complete 256 MiB recording,
// segments read from Badger (the segment cache is emptied first; the page
// cache is warm). Target ≥ 1 GB/s.
func BenchmarkReadSequential(b *testing.B) {
	const size = 256 << 20
	s := benchStore(b, Options{})
	fill(b, s, "seq", newBenchFeed(8, 400), size)
	seq := s.recs["seq"].seq
	b.ReportAllocs()
	b.ResetTimer()
	var total int64
	for i := 0; i < b.N; i++ {
		s.cache.drop(seq, ^uint32(0))
		r, err := s.NewReader("seq", 0)
		if err != nil {
			b.Fatal(err)
		}
		for {
			p, err := r.Next(context.Background())
			if err != nil {
				break
			}
			total += int64(len(p.RTP))
		}
		_ = r.Close()
	}
	b.ReportMetric(float64(total)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkSeek: NewReader at a random time plus its first packet, on a
// 1-hour 2 Mbit/s recording (25 fps, 2 s GOP, ~900 MB, default 256 KiB / 1 s
// segments: ~3600 segments), built once before timing. Median over 500
// seeks, mostly segment-cache misses. Target ≤ 1 ms.
func BenchmarkSeek(b *testing.B) {
	s := benchStore(b, Options{})
	feed := newBenchFeed(8, 400) // 8*1300 + 400 B per 40 ms frame ≈ 2.2 Mbit/s
	w, err := s.Create(Manifest{Key: "hour", Tracks: avTracks()})
	if err != nil {
		b.Fatal(err)
	}
	for feed.frame < 25*3600 {
		if err := feed.nextFrame(w.Append); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		b.Fatal(err)
	}
	m, _ := s.Manifest("hour")
	rnd := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	b.ResetTimer()
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		for j := 0; j < 500; j++ {
			from := time.Duration(rnd.Int64N(int64(time.Hour)))
			t0 := time.Now()
			r, err := s.NewReader("hour", from)
			if err != nil {
				b.Fatal(err)
			}
			p, err := r.Next(context.Background())
			lat = append(lat, time.Since(t0))
			_ = r.Close()
			if err != nil || p.Flags&FlagKeyStart == 0 || p.TT > from || from-p.TT > 2*time.Second {
				b.Fatalf("seek to %v landed on %v (flags %d): %v", from, p.TT, p.Flags, err)
			}
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "ms/seek")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "ms/seek-p99")
	b.ReportMetric(float64(len(m.Segments)), "segments")
	b.ReportMetric(float64(m.Bytes)/1e6, "MB-stored")
}

// BenchmarkTailWakeup: a reader blocked at the tail of a filling recording;
// time from the start of Append to the reader's Next returning that packet.
// Median over 2000 appends. Target ≤ 100 µs.
func BenchmarkTailWakeup(b *testing.B) {
	s := benchStore(b, Options{})
	w, err := s.Create(Manifest{Key: "tail", Tracks: avTracks()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Finish(StateComplete)
	r, err := s.NewReader("tail", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	got := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := r.Next(ctx); err != nil {
				return
			}
			got <- time.Now()
		}
	}()
	defer func() { cancel(); <-done }()
	rec := s.recs["tail"]
	blocked := func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.wait != nil
	}
	feed := newBenchFeed(1, 0)
	b.ReportAllocs()
	b.ResetTimer()
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		for j := 0; j < 2000; j++ {
			for !blocked() {
				runtime.Gosched()
			}
			t0 := time.Now()
			if err := feed.nextFrame(w.Append); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, (<-got).Sub(t0))
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "µs/wakeup")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "µs/wakeup-p99")
}

// BenchmarkSegmentVerify: the check every segment read from disk gets
// (damage.go) on a 256 KiB segment, in MB/s: crc32c (what a segment
// stored by this version gets) and sha256 (one stored before).
// BenchmarkReadSequential includes it.
func BenchmarkSegmentVerify(b *testing.B) {
	s := memStore(b, Options{})
	raw := make([]byte, 256<<10)
	for name, si := range map[string]SegmentInfo{
		"crc32c": {CRC: crc32.Checksum(raw, castagnoli), hasCRC: true},
		"sha256": {Hash: sha256.Sum256(raw)},
	} {
		rec := &recording{key: "verify", segs: []SegmentInfo{si}}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := s.verifySegment(rec, 0, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
