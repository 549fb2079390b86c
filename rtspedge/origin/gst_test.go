package origin

import (
	"os"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/interop"
)

// TestMain gives the interop kit's clips a directory for the package.
func TestMain(m *testing.M) { os.Exit(interop.Main(m)) }

// gstPlays is how many GStreamer plays TestGStreamerEndsByItself runs at
// once.
const gstPlays = 4

// TestGStreamerEndsByItself: GStreamer's rtspsrc, decoding in its jitter
// buffer's thread as the interop matrix's reference play does
// (testdata/gst-play.py), ends by itself at the end of a VOD played over
// TCP, several plays at once, each within 3 s of its last frame. With the
// BYE right after the last packet, a play now and then never ended, more
// often on a loaded machine (byeGrace says why).
func TestGStreamerEndsByItself(t *testing.T) {
	t.Parallel()
	ts, err := os.ReadFile(interop.H264AACTS.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	o := startOrigin(t, Config{Media: map[string][]byte{"clip.ts": ts}})
	url := "rtsp://" + o.Addr() + "/clip.ts"
	var runs []*interop.Running
	for range gstPlays {
		runs = append(runs, interop.Start(t, interop.GStreamer, url, interop.Options{Timeout: 30 * time.Second}))
	}
	for i, r := range runs {
		play := r.Wait()
		if err := play.Check(); err != nil {
			t.Errorf("play %d: %v", i, err)
			continue
		}
		t.Logf("play %d: %s", i, play.Summary())
		if len(play.Frames[interop.Video]) == 0 || len(play.Frames[interop.Audio]) == 0 {
			t.Errorf("play %d: %d video and %d audio frames, want both", i, len(play.Frames[interop.Video]), len(play.Frames[interop.Audio]))
		}
		if lag := play.EndLag(); lag > 3*time.Second {
			t.Errorf("play %d: ended %v after its last frame, want within 3 s", i, lag.Round(time.Millisecond))
		}
	}
}
