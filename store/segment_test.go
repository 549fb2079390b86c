package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func TestSegmentRoundTrip(t *testing.T) {
	pk := synth(defaultSpec, time.Second)
	pk[3].TT = -5 * time.Millisecond
	pk[4].PN = 1 << 62
	data := encodeSegment(7, pk)
	idx, got, err := decodeSegment(data)
	if err != nil || idx != 7 {
		t.Fatalf("index %d err %v", idx, err)
	}
	checkPackets(t, got, pk)
	si := segmentInfo(got)
	if si.FirstTT != 0 || si.FirstKeyTT != 0 || si.Packets != uint32(len(pk)) || si.LastTT != pk[len(pk)-1].TT {
		t.Fatalf("info %+v", si)
	}
}

// TestDecodeSegmentDamaged: damaged input gives ErrCorrupt, never a panic or
// an allocation driven by a length field.
func TestDecodeSegmentDamaged(t *testing.T) {
	good := encodeSegment(1, synth(defaultSpec, 200*time.Millisecond))
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"header only", good[:segHeaderLen]},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"magic", mod(func(b []byte) []byte { b[0] = 'X'; return b })},
		{"version", mod(func(b []byte) []byte { b[4] = 9; return b })},
		{"zero count", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[9:], 0); return b })},
		{"absurd count", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[9:], 1<<31); return b })},
		{"count one more", mod(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[9:], binary.BigEndian.Uint32(b[9:])+1)
			return b
		})},
		{"absurd length", append(bytes.Clone(good[:segHeaderLen-4]), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8)},
		{"huge", make([]byte, MaxSegmentBytes+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeSegment(tc.data); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
	// Every flipped bit either decodes or gives ErrCorrupt.
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x80
		if _, err := DecodeSegment(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
}

func TestDecodeHeaderAndSegInfo(t *testing.T) {
	h := header{Seq: 3, M: Manifest{Key: "k", State: StateComplete, Tracks: avTracks(), SDP: []byte("v=0")}, NextIndex: 2}
	b, err := encodeHeader(&h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeHeader("k", b)
	if err != nil || got.Seq != 3 || got.M.Key != "k" || got.NextIndex != 2 || string(got.M.SDP) != "v=0" {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"", "{", "null", `{"v":2}`, `{"v":1,"manifest":{"key":"k","state":"x"}}`,
		`{"v":1,"manifest":{"key":"other","state":"complete"}}`,
		`{"v":1,"manifest":{"key":"k","state":"complete"},"first_index":3,"next_index":2}`,
		`{"v":1,"manifest":{"key":"k","state":"complete","created":"2000-01-01T00:00:00+24:00"}}`} {
		if _, err := decodeHeader("k", []byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	si := SegmentInfo{Index: 4, FirstTT: time.Second, LastTT: 2 * time.Second, FirstKeyTT: -1, FirstPN: 9, Packets: 3, Size: 400, Hash: Hash{1, 2}}
	gotSI, err := decodeSegInfo(encodeSegInfo(&si))
	if err != nil || gotSI != si {
		t.Fatalf("%+v %v", gotSI, err)
	}
	for _, bad := range [][]byte{nil, encodeSegInfo(&si)[:10], func() []byte {
		s := si
		s.Packets = 1000
		return encodeSegInfo(&s)
	}()} {
		if _, err := decodeSegInfo(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func FuzzDecodeSegment(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new input, which is slow for big ones.
	f.Add(encodeSegment(0, synth(streamSpec{fps: 25, gop: 2, pktsPerFrame: 2, size: 16, audio: true}, 80*time.Millisecond)))
	f.Add(encodeSegment(3, []Packet{{TT: -time.Second, PN: 1 << 40, RTP: []byte{0x80, 1}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, pk, err := decodeSegment(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes.
		if again := encodeSegment(idx, pk); !bytes.Equal(again, data) {
			// Varints have non-minimal encodings; decoding the re-encoding must agree.
			_, pk2, err := decodeSegment(again)
			if err != nil || len(pk2) != len(pk) {
				t.Fatalf("re-encoding does not decode: %v", err)
			}
			for i := range pk {
				if !samePacket(pk[i], pk2[i]) {
					t.Fatalf("packet %d changed", i)
				}
			}
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	h := header{Seq: 1, M: Manifest{Key: "rtsp://h:554/a", State: StatePartial, Tracks: avTracks(), SDP: []byte("v=0\r\n")}, NextIndex: 5, FirstIndex: 1}
	b, _ := encodeHeader(&h)
	f.Add(b, []byte{})
	si := SegmentInfo{Index: 1, Packets: 2, Size: 100, FirstKeyTT: -1}
	f.Add([]byte(`{"v":1}`), encodeSegInfo(&si))
	f.Fuzz(func(t *testing.T, hdr, info []byte) {
		if h, err := decodeHeader("", hdr); err == nil {
			if _, err := encodeHeader(&h); err != nil {
				t.Fatal(err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("header error not ErrCorrupt: %v", err)
		}
		if si, err := decodeSegInfo(info); err == nil {
			if got, _ := decodeSegInfo(encodeSegInfo(&si)); got != si {
				t.Fatal("segment info does not round-trip")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("segment info error not ErrCorrupt: %v", err)
		}
	})
}
