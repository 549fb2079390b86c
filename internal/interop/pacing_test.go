package interop

import (
	"math"
	"testing"
	"time"
)

// TestPacing: pacing is measured between the player's start-up and its end,
// so the burst of a start (probing) and of an end (a decoder letting out the
// frames it held back when the stream ends, late or early) do not count, a
// stream delivered slow or fast does, and one frame held back by a loaded
// machine moves it little.
func TestPacing(t *testing.T) {
	t.Parallel()
	const fps, secs = 25, 4 // a seek's 4 s of video
	frameDur := time.Second / fps
	start := time.Unix(1000, 0)
	// play decodes the frames of secs at speed, the first second at once,
	// the last 4 frames when the end is noticed, endAfter past the last
	// frame's time, and frame held (if not negative) 150 ms late.
	play := func(speed float64, endAfter time.Duration, held int) *Play {
		var fs []Frame
		n := fps * secs
		for i := range n {
			pos := time.Duration(i) * frameDur
			at := start.Add(max(time.Duration(float64(pos)/speed), time.Second))
			if i >= n-4 {
				at = start.Add(time.Duration(float64(n-4)*float64(frameDur)/speed) + endAfter)
			}
			if i == held {
				at = at.Add(150 * time.Millisecond)
			}
			fs = append(fs, Frame{PTS: pos, Dur: frameDur, At: at})
		}
		return &Play{Frames: Frames{Video: fs}}
	}
	for name, c := range map[string]struct {
		p    *Play
		want float64
	}{
		"real time, early end":       {play(1, 0, -1), 1},
		"real time, end 400 ms late": {play(1, 400*time.Millisecond, -1), 1},
		"one frame held back":        {play(1, 0, 70), 1},
		"20 % slow":                  {play(1/1.2, 0, -1), 1.2},
		"20 % fast":                  {play(1/0.8, 0, -1), 0.8},
	} {
		got, err := c.p.Pacing()
		if err != nil || math.Abs(got-c.want) > 0.02 {
			t.Errorf("%s: pacing %.3f, %v; want %.3f ± 0.02", name, got, err, c.want)
		}
	}
	short := &Play{Frames: Frames{Video: play(1, 0, -1).Frames[Video][:2*fps]}}
	if got, err := short.Pacing(); err == nil {
		t.Errorf("2 s of media: pacing %.3f, want an error (too little to pace)", got)
	}
}
