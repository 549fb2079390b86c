package metainfo

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	full := Info{
		TT: 123456 * time.Millisecond, FT: FrameB, PN: 1<<40 + 7, SQ: 65535, PP: 1 << 33,
		MD:    []byte{0x65, 1, 2, 3},
		HasTT: true, HasFT: true, HasPN: true, HasSQ: true, HasPP: true, HasMD: true,
	}
	tests := []struct {
		header string
		size   int // encoded payload size
	}{
		{"tt;ft;pn;sq;pp;md", 4 + 8 + 4 + 2 + 4 + 8 + 4 + 2 + 4 + 8 + 4 + 4},
		{"tt=0;ft=1;pn=2;sq=3;pp=4;md", 2 + 8 + 2 + 2 + 2 + 8 + 2 + 2 + 2 + 8 + 4 + 4},
		{"md;tt=9;pn", 2 + 8 + 4 + 8 + 4 + 4}, // md is written last whatever the order
		{"ft", 4 + 2},
	}
	for _, tc := range tests {
		t.Run(tc.header, func(t *testing.T) {
			f, err := ParseHeader(tc.header)
			if err != nil {
				t.Fatal(err)
			}
			p := Encode(nil, f, full)
			if len(p) != tc.size {
				t.Fatalf("encoded %d bytes, want %d: % x", len(p), tc.size, p)
			}
			got, err := Decode(p, f)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := Info{}
			if f.Has(NameTT) {
				want.TT, want.HasTT = full.TT, true
			}
			if f.Has(NameFT) {
				want.FT, want.HasFT = full.FT, true
			}
			if f.Has(NamePN) {
				want.PN, want.HasPN = full.PN, true
			}
			if f.Has(NameSQ) {
				want.SQ, want.HasSQ = full.SQ, true
			}
			if f.Has(NamePP) {
				want.PP, want.HasPP = full.PP, true
			}
			if f.Has(NameMD) {
				want.MD, want.HasMD = full.MD, true
			}
			if !bytes.Equal(got.MD, want.MD) {
				t.Fatalf("md = % x, want % x", got.MD, want.MD)
			}
			got.MD, want.MD = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Decode = %+v, want %+v", got, want)
			}
		})
	}
}

func TestEncodeWireFormat(t *testing.T) {
	f, err := ParseHeader("tt=0;ft;md")
	if err != nil {
		t.Fatal(err)
	}
	got := Encode([]byte{0xAA}, f, Info{TT: 1500*time.Millisecond + 999*time.Microsecond, FT: FrameKey, MD: []byte{9}})
	want := []byte{
		0xAA,                                  // dst prefix kept
		0x80, 8, 0, 0, 0, 0, 0, 0, 0x05, 0xdc, // tt, compressed id 0: 1500 ms (truncated)
		'f', 't', 0, 2, 0, 1, // ft, standard form
		'm', 'd', 0, 1, 9, // md, last
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode = % x\nwant     % x", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	f, _ := ParseHeader("tt=0;ft=1;pn;md")
	tests := []struct {
		name string
		in   []byte
	}{
		{"truncated standard", []byte{'t', 't', 0}},
		{"truncated compressed", []byte{0x80}},
		{"length beyond", []byte{'p', 'n', 0, 8, 1, 2}},
		{"compressed length beyond", []byte{0x81, 2, 1}},
		{"tt wrong size", []byte{'t', 't', 0, 4, 0, 0, 0, 1}},
		{"ft wrong size", []byte{0x81, 1, 1}},
		{"tt twice", []byte{0x80, 8, 0, 0, 0, 0, 0, 0, 0, 1, 't', 't', 0, 8, 0, 0, 0, 0, 0, 0, 0, 1}},
		{"tt overflow", []byte{'t', 't', 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if i, err := Decode(tc.in, f); !errors.Is(err, ErrPacket) {
				t.Fatalf("Decode = %+v, %v; want ErrPacket", i, err)
			}
		})
	}
}

func TestDecodeSkipsUnknown(t *testing.T) {
	f, _ := ParseHeader("tt=0")
	in := []byte{'x', 'x', 0, 1, 7, 0x85, 2, 1, 2, 0x80, 8, 0, 0, 0, 0, 0, 0, 0, 42}
	i, err := Decode(in, f)
	if err != nil {
		t.Fatal(err)
	}
	if !i.HasTT || i.TT != 42*time.Millisecond || i.HasPN || i.HasMD {
		t.Fatalf("Decode = %+v", i)
	}
}

func FuzzDecode(f *testing.F) {
	fl, _ := ParseHeader("tt=0;ft=1;pn;sq;md")
	f.Add("tt=0;ft=1;pn;sq;md", Encode(nil, fl, Info{TT: time.Second, FT: 1, PN: 3, SQ: 4, MD: []byte{1, 2}}))
	f.Add("tt;ft;pn;md", []byte{'t', 't', 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 'm', 'd', 0, 0})
	f.Add("pp=5", []byte{0x85, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0x80})
	f.Fuzz(func(t *testing.T, header string, payload []byte) {
		fl, err := ParseHeader(header)
		if err != nil {
			fl = nil
		}
		i, err := Decode(payload, fl)
		if err != nil {
			return
		}
		if len(i.MD) > len(payload) {
			t.Fatalf("md longer than the payload")
		}
		// Re-encoding what was decoded decodes to the same values.
		var names Fields
		for _, n := range []struct {
			name string
			has  bool
		}{{NameTT, i.HasTT}, {NameFT, i.HasFT}, {NamePN, i.HasPN}, {NameSQ, i.HasSQ}, {NamePP, i.HasPP}, {NameMD, i.HasMD}} {
			if n.has {
				names = append(names, Field{Name: n.name, ID: NoID})
			}
		}
		again, err := Decode(Encode(nil, names, i), names)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(again.MD, i.MD) {
			t.Fatalf("md changed")
		}
		again.MD, i.MD = nil, nil
		if !reflect.DeepEqual(again, i) {
			t.Fatalf("re-decode %+v != %+v", again, i)
		}
	})
}
