package metainfo

import "testing"

// H.264 NAL headers used below (nal_ref_idc 3).
const (
	h264SPS = 0x67
	h264PPS = 0x68
	h264IDR = 0x65
	h264Non = 0x41
	h264SEI = 0x06
)

// Slice headers: first_mb_in_slice=0 ('1'), slice_type ue.
var (
	sliceP = []byte{0x88} // 1 | 1 (ue 0 = P) ...
	sliceB = []byte{0xA0} // 1 | 010 (ue 1 = B)
)

func TestFrameTypeH264(t *testing.T) {
	tests := []struct {
		name     string
		payload  []byte
		ft       uint16
		keyStart bool
	}{
		{"empty", nil, FrameUnknown, false},
		{"idr single", []byte{h264IDR, 0x88, 0x84}, FrameKey, true},
		{"sps", []byte{h264SPS, 0x42, 0xc0, 0x1e}, FrameKey, true},
		{"pps", []byte{h264PPS, 0xce}, FrameKey, false},
		{"sei", []byte{h264SEI, 5}, FrameUnknown, false},
		{"p slice", append([]byte{h264Non}, sliceP...), FrameP, false},
		{"b slice", append([]byte{h264Non}, sliceB...), FrameB, false},
		{"slice too short", []byte{h264Non}, FrameP, false},
		{"stap-a sps pps", []byte{0x78, 0, 2, h264SPS, 0x42, 0, 2, h264PPS, 0xce}, FrameKey, true},
		{"stap-a sps pps idr", []byte{0x78, 0, 1, h264SPS, 0, 1, h264PPS, 0, 2, h264IDR, 0x88}, FrameKey, true},
		{"stap-a bad size", []byte{0x78, 0, 9, h264SPS}, FrameUnknown, false},
		{"stap-a sei b", []byte{0x78, 0, 1, h264SEI, 0, 2, h264Non, 0xA0}, FrameB, false},
		{"fu-a idr start", []byte{0x7c, 0x85, 0x88}, FrameKey, true},
		{"fu-a idr middle", []byte{0x7c, 0x05, 1}, FrameKey, false},
		{"fu-a idr end", []byte{0x7c, 0x45, 1}, FrameKey, false},
		{"fu-a b start", []byte{0x5c, 0x81, 0xA0}, FrameB, false},
		{"fu-a non-idr middle", []byte{0x5c, 0x01, 0}, FrameP, false},
		{"fu-a short", []byte{0x5c}, FrameUnknown, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft, ks := FrameTypeH264(tc.payload)
			if ft != tc.ft || ks != tc.keyStart {
				t.Fatalf("FrameTypeH264(% x) = %d, %v; want %d, %v", tc.payload, ft, ks, tc.ft, tc.keyStart)
			}
		})
	}
}

func TestH264SliceTypes(t *testing.T) {
	// slice_type values 0..9: P B I SP SI P B I SP SI. I/SP/SI in a non-IDR
	// slice count as P.
	want := []uint16{FrameP, FrameB, FrameP, FrameP, FrameP, FrameP, FrameB, FrameP, FrameP, FrameP}
	for st, w := range want {
		// first_mb_in_slice = 0 ("1"), then ue(st).
		bits := "1" + ueBits(uint32(st))
		if got := h264SliceType(packBits(bits)); got != w {
			t.Fatalf("slice_type %d: got %d, want %d", st, got, w)
		}
	}
}

func ueBits(v uint32) string {
	v++
	n := 0
	for x := v; x > 1; x >>= 1 {
		n++
	}
	s := ""
	for i := 0; i < n; i++ {
		s += "0"
	}
	for i := n; i >= 0; i-- {
		if v>>uint(i)&1 == 1 {
			s += "1"
		} else {
			s += "0"
		}
	}
	return s
}

func packBits(s string) []byte {
	b := make([]byte, (len(s)+7)/8)
	for i, c := range s {
		if c == '1' {
			b[i/8] |= 0x80 >> uint(i%8)
		}
	}
	return b
}

func TestFrameTypeH265(t *testing.T) {
	nal := func(typ byte) byte { return typ << 1 }
	tests := []struct {
		name     string
		payload  []byte
		ft       uint16
		keyStart bool
	}{
		{"short", []byte{nal(19)}, FrameUnknown, false},
		{"idr_w_radl", []byte{nal(19), 1, 0xaf}, FrameKey, true},
		{"cra", []byte{nal(21), 1, 0xaf}, FrameKey, true},
		{"vps", []byte{nal(32), 1, 0}, FrameKey, true},
		{"sps", []byte{nal(33), 1, 0}, FrameKey, true},
		{"pps", []byte{nal(34), 1, 0}, FrameKey, false},
		{"trail_r", []byte{nal(1), 1, 0}, FrameP, false},
		{"sei", []byte{nal(39), 1, 0}, FrameUnknown, false},
		{"ap vps sps pps", []byte{nal(48), 1, 0, 2, nal(32), 1, 0, 2, nal(33), 1, 0, 2, nal(34), 1}, FrameKey, true},
		{"ap bad", []byte{nal(48), 1, 0, 9, nal(32)}, FrameUnknown, false},
		{"fu idr start", []byte{nal(49), 1, 0x80 | 19, 0}, FrameKey, true},
		{"fu idr cont", []byte{nal(49), 1, 19, 0}, FrameKey, false},
		{"fu trail start", []byte{nal(49), 1, 0x80 | 1, 0}, FrameP, false},
		{"fu short", []byte{nal(49), 1}, FrameUnknown, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft, ks := FrameTypeH265(tc.payload)
			if ft != tc.ft || ks != tc.keyStart {
				t.Fatalf("FrameTypeH265(% x) = %d, %v; want %d, %v", tc.payload, ft, ks, tc.ft, tc.keyStart)
			}
		})
	}
}

func TestFrameTypeMJPEG(t *testing.T) {
	first := []byte{0, 0, 0, 0, 1, 255, 80, 45}
	next := []byte{0, 0, 5, 0xdc, 1, 255, 80, 45}
	if ft, ks := FrameTypeMJPEG(first); ft != FrameKey || !ks {
		t.Fatalf("first fragment = %d, %v", ft, ks)
	}
	if ft, ks := FrameTypeMJPEG(next); ft != FrameKey || ks {
		t.Fatalf("next fragment = %d, %v", ft, ks)
	}
}

func TestTrackerH264(t *testing.T) {
	type pkt struct {
		payload  []byte
		ts       uint32
		marker   bool
		ft       uint16
		keyStart bool
	}
	seq := []pkt{
		{[]byte{h264SPS, 0x42}, 100, false, FrameKey, true}, // key AU: SPS carries the mark
		{[]byte{h264PPS, 0xce}, 100, false, FrameKey, false},
		{[]byte{0x7c, 0x85, 0x88}, 100, false, FrameKey, false}, // IDR start: same AU, not marked again
		{[]byte{0x7c, 0x45, 0x00}, 100, true, FrameKey, false},
		{[]byte{0x5c, 0x81, 0xA0}, 200, false, FrameB, false}, // B frame in fragments
		{[]byte{0x5c, 0x01, 0x00}, 200, false, FrameB, false}, // continuation inherits B
		{[]byte{0x5c, 0x41, 0x00}, 200, true, FrameB, false},
		{append([]byte{h264Non}, sliceP...), 300, true, FrameP, false},
		{[]byte{h264IDR, 0x88}, 400, true, FrameKey, true}, // IDR alone
		{[]byte{h264IDR, 0x88}, 400, true, FrameKey, true}, // marker closed the AU: new AU, same ts
	}
	tr := Tracker{Classify: FrameTypeH264}
	for i, p := range seq {
		ft, ks := tr.Next(p.payload, p.ts, p.marker)
		if ft != p.ft || ks != p.keyStart {
			t.Fatalf("packet %d: got %d, %v; want %d, %v", i, ft, ks, p.ft, p.keyStart)
		}
	}
}

func FuzzFrameType(f *testing.F) {
	f.Add([]byte{0x78, 0, 1, h264SPS, 0, 1, h264PPS, 0, 2, h264IDR, 0x88})
	f.Add([]byte{0x7c, 0x85, 0x88})
	f.Add([]byte{96, 1, 0, 2, 64, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, c := range []func([]byte) (uint16, bool){FrameTypeH264, FrameTypeH265, FrameTypeMJPEG} {
			if ft, _ := c(p); ft > FrameP {
				t.Fatalf("frame type %d out of range", ft)
			}
		}
	})
}
