package origin

import "testing"

// FuzzPacketize feeds arbitrary bytes to the MPEG-TS packetizer: it must
// return a clip or an error, never panic, and a clip it returns must be
// servable (key starts, packets in tt order).
func FuzzPacketize(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new-coverage input for up to
	// a minute, in time proportional to its size.
	s := SampleClip()
	f.Add(s[:188*12])
	f.Add(s[188*4 : 188*10])
	f.Add([]byte{0x47, 0x40, 0x00, 0x10, 0x00})
	f.Fuzz(func(t *testing.T, ts []byte) {
		if len(ts) > 64<<10 {
			return
		}
		c, err := Packetize(ts)
		if err != nil {
			return
		}
		if len(c.keyStarts) == 0 || c.Duration <= 0 {
			t.Fatalf("clip without key start or duration: %d keys, %v", len(c.keyStarts), c.Duration)
		}
		for i := 1; i < len(c.Packets); i++ {
			if c.Packets[i].TT < c.Packets[i-1].TT {
				t.Fatalf("packet %d goes back in tt", i)
			}
		}
		if _, err := describe(c, false); err != nil {
			t.Fatalf("describe: %v", err)
		}
	})
}
