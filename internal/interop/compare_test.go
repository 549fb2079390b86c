package interop

import (
	"strings"
	"testing"
)

// TestAlignFrames: the content alignment of two players' frames finds the
// overlap wherever it is and cannot be fooled by a partial match.
func TestAlignFrames(t *testing.T) {
	t.Parallel()
	seq := func(s string) []string { return strings.Split(s, "") }
	for name, c := range map[string]struct {
		a, b string
		want int // -1: an error
	}{
		"identical":             {"abcdef", "abcdef", 6},
		"second starts later":   {"abcdef", "cdefgh", 4},
		"second starts earlier": {"cdefgh", "abcdef", 4},
		"second inside first":   {"abcdefgh", "cde", 3},
		"frame differs":         {"abcdefgh", "abcXefgh", -1},
		"frame dropped":         {"abcdefgh", "abcefgh", -1},
		"frame repeated":        {"abcdefgh", "abccdefgh", -1},
		"differs at the end":    {"abcdefgh", "cdefgX", -1},
		"nothing in common":     {"abc", "xyz", -1},
		"repeats in one player": {"abcabc", "abc", -1},
		"empty second":          {"abc", "", -1},
	} {
		n, err := AlignFrames(seq(c.a), seq(c.b))
		if c.want < 0 && err == nil {
			t.Errorf("%s: %d frames in common, want an error", name, n)
		}
		if c.want >= 0 && (err != nil || n != c.want) {
			t.Errorf("%s: %d, %v; want %d", name, n, err, c.want)
		}
	}
}
