package metainfo

import (
	"testing"
	"time"
)

// BenchmarkEncodeDecode encodes and decodes 10000 meta-info packets per
// iteration (tt, ft, pn, sq compressed, 1400-byte md).
func BenchmarkEncodeDecode(b *testing.B) {
	f, err := ParseHeader("tt=0;ft=1;pn=2;sq=3;md")
	if err != nil {
		b.Fatal(err)
	}
	in := Info{TT: 12 * time.Second, FT: FrameP, PN: 123456, SQ: 77, MD: make([]byte, 1400)}
	buf := make([]byte, 0, 1500)
	const packets = 10000
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		for range packets {
			buf = Encode(buf[:0], f, in)
			if _, err := Decode(buf, f); err != nil {
				b.Fatal(err)
			}
		}
		n += packets
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "ns/packet")
}

// BenchmarkTrackerH264 classifies 9000 FU-A fragments of P frames per
// iteration.
func BenchmarkTrackerH264(b *testing.B) {
	tr := Tracker{Classify: FrameTypeH264}
	start := []byte{0x5c, 0x81, 0x88, 0, 0, 0}
	mid := []byte{0x5c, 0x01, 0, 0, 0, 0}
	b.ReportAllocs()
	ts := uint32(0)
	begin := time.Now()
	n := 0
	for b.Loop() {
		for range 1000 {
			ts += 3600
			tr.Next(start, ts, false)
			for range 8 {
				tr.Next(mid, ts, false)
			}
		}
		n += 9000
	}
	b.ReportMetric(float64(time.Since(begin).Nanoseconds())/float64(n), "ns/packet")
}
