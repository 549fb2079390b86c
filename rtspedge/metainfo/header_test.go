package metainfo

import (
	"errors"
	"testing"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String() of the result
		wantErr bool
	}{
		{in: "tt;ft;pn;sq;md", want: "tt;ft;pn;sq;md"},
		{in: "tt=0;ft=1;pn;md", want: "tt=0;ft=1;pn;md"},
		{in: " tt=0 ; pn=127;md ", want: "tt=0;pn=127;md"},
		{in: "tt;pn;md=3", want: "tt;pn;md"}, // md is never compressed
		{in: "tt;;pn;", want: "tt;pn"},
		{in: "xx;tt", want: "xx;tt"}, // unknown names are kept
		{in: "", wantErr: true},
		{in: ";", wantErr: true},
		{in: "ttt", wantErr: true},
		{in: "t", wantErr: true},
		{in: "t-", wantErr: true},
		{in: "tt;tt", wantErr: true},
		{in: "tt=1;pn=1", wantErr: true},
		{in: "tt=128", wantErr: true},
		{in: "tt=-1", wantErr: true},
		{in: "tt=x", wantErr: true},
		{in: "é1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			f, err := ParseHeader(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrHeader) {
					t.Fatalf("ParseHeader(%q) = %v, %v; want ErrHeader", tc.in, f, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHeader(%q): %v", tc.in, err)
			}
			if got := f.String(); got != tc.want {
				t.Fatalf("ParseHeader(%q).String() = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct {
		req       string
		supported []string
		want      string
	}{
		{"tt;ft;pn;sq;md", []string{NameTT, NameFT, NamePN, NameMD}, "tt;ft;pn;md"},
		{"md;tt=0;ft=1;pn", []string{NameTT, NameFT, NamePN, NameSQ, NameMD}, "tt=0;ft=1;pn;md"},
		{"pp;xx", []string{NameTT}, ""},
		{"tt=5;md", []string{NameTT}, "tt=5"},
	}
	for _, tc := range tests {
		t.Run(tc.req, func(t *testing.T) {
			f, err := ParseHeader(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Intersect(tc.supported...).String(); got != tc.want {
				t.Fatalf("Intersect = %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"tt;ft;pn;sq;md", "tt=0;ft=1;pn;md", "tt=127;pp=3", ";;", "md=1;tt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fl, err := ParseHeader(s)
		if err != nil {
			return
		}
		// What parses re-parses to the same thing.
		again, err := ParseHeader(fl.String())
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", fl.String(), s, err)
		}
		if again.String() != fl.String() {
			t.Fatalf("re-parse %q != %q", again.String(), fl.String())
		}
	})
}
