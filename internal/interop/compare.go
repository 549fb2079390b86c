package interop

import (
	"fmt"
	"strings"
)

// SameFrames returns an error unless got decoded exactly want's frames:
// for every kind want has, the same number of frames with the same MD5s in
// the same order (timestamps are not compared: a transport may shift them).
// A want with no frames at all is an error, so an empty reference cannot
// make a broken play pass.
func SameFrames(got, want Frames) error {
	if len(want[Video]) == 0 && len(want[Audio]) == 0 {
		return fmt.Errorf("the reference decoded no frames")
	}
	var errs []string
	for _, k := range []Kind{Video, Audio} {
		if err := sameSeq(got.MD5s(k), want.MD5s(k)); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", k, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func sameSeq(got, want []string) error {
	n := min(len(got), len(want))
	for i := range n {
		if got[i] != want[i] {
			return fmt.Errorf("frame %d of %d differs (%s, want %s%s); %d frames, want %d",
				i, len(want), got[i], want[i], whereIs(got[i], want), len(got), len(want))
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d frames, want %d (the first %d are identical)", len(got), len(want), n)
	}
	return nil
}

// whereIs says where frame h is in want, if anywhere: a frame found
// elsewhere points at a dropped, repeated or reordered frame.
func whereIs(h string, want []string) string {
	for i, w := range want {
		if w == h {
			return fmt.Sprintf("; it is the reference's frame %d", i)
		}
	}
	return "; the reference has no such frame"
}

// AlignFrames aligns b's frames on a's by content and returns how many
// frames the two share. It is an error unless the alignment is unambiguous
// (no frame repeats within either sequence) and every frame of the
// overlapping span matches: the longest common run of frames must cover the
// whole span where both sequences have frames under that alignment, so a
// dropped, duplicated or differing frame anywhere in the span is an error.
func AlignFrames(a, b []string) (int, error) {
	for _, seq := range [][]string{a, b} {
		seen := make(map[string]int, len(seq))
		for i, h := range seq {
			if j, dup := seen[h]; dup {
				return 0, fmt.Errorf("frames %d and %d are identical (%s): a content alignment would be ambiguous", j, i, h)
			}
			seen[h] = i
		}
	}
	ai, bi, run := longestCommonRun(a, b)
	if run == 0 {
		return 0, fmt.Errorf("no frame in common (%d and %d frames)", len(a), len(b))
	}
	// Under the alignment b[j] ~ a[j+d], both have frames for j in [lo, hi).
	d := ai - bi
	lo, hi := max(0, -d), min(len(b), len(a)-d)
	for j := lo; j < hi; j++ {
		if b[j] != a[j+d] {
			return 0, fmt.Errorf("aligned at offset %d the overlap is frames %d..%d of the second, but frame %d differs (%s, want %s); longest identical run %d",
				d, lo, hi-1, j, b[j], a[j+d], run)
		}
	}
	return run, nil
}

// longestCommonRun returns the longest run of consecutive equal elements of
// a and b: a[ai:ai+n] == b[bi:bi+n].
func longestCommonRun(a, b []string) (ai, bi, n int) {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cur[j] = 0
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
				if cur[j] > n {
					ai, bi, n = i-cur[j], j-cur[j], cur[j]
				}
			}
		}
		prev, cur = cur, prev
	}
	return ai, bi, n
}
