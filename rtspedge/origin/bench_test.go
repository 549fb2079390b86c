package origin

import "testing"

// BenchmarkPacketize cuts the 20 s sample into RTP packets (what New does
// once per file) and reports the input rate.
func BenchmarkPacketize(b *testing.B) {
	ts := SampleClip()
	b.ReportAllocs()
	b.SetBytes(int64(len(ts)))
	for b.Loop() {
		if _, err := Packetize(ts); err != nil {
			b.Fatal(err)
		}
	}
}
