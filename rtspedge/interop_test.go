package rtspedge

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// TestFFmpegInterop plays the sample with ffmpeg directly from the origin and
// through the server: a first play while the recording fills (miss, TCP),
// plays of a complete recording (hit, TCP and UDP), and a seek to 10 s. The
// decoded video frames are identical in content and count, ffprobe sees the
// same streams, and the wall time through the server is within ±10 % of the
// direct play. All plays run at once: the test takes one clip's duration.
func TestFFmpegInterop(t *testing.T) {
	t.Parallel()
	o, _ := startOrigin(t, origin.Config{})
	st := newStore(t)
	fill(t, st, "hit", originURL(o, samplePath), OriginRequest{AskMetaInfo: true, Speed: 8})
	recs := newTestRecordings(t, st)
	recs.origins["miss"] = originURL(o, samplePath)
	s := startServer(t, ServerConfig{Recordings: recs, Transports: []string{"tcp", "udp"}, UDPRTPAddress: "127.0.0.1:0"})

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	type result struct {
		sums []string
		took time.Duration
	}
	plays := map[string][]string{
		"direct":   {"-rtsp_transport", "tcp", "-i", originURL(o, samplePath)},
		"miss-tcp": {"-rtsp_transport", "tcp", "-i", serverURL(s, "miss")},
		"hit-tcp":  {"-rtsp_transport", "tcp", "-i", serverURL(s, "hit")},
		"hit-udp":  {"-rtsp_transport", "udp", "-i", serverURL(s, "hit")},
		// -seek_timestamp 1: seek to NPT 10 s itself, not 10 s after the first
		// packet ffmpeg saw (the store starts a play at the first key frame,
		// 21 ms after the origin's first audio packet).
		"direct-seek": {"-rtsp_transport", "tcp", "-seek_timestamp", "1", "-ss", "10", "-i", originURL(o, samplePath)},
		"hit-seek":    {"-rtsp_transport", "tcp", "-seek_timestamp", "1", "-ss", "10", "-i", serverURL(s, "hit")},
	}
	// Every play at once (t.Parallel subtests would run only GOMAXPROCS at a
	// time): the test lasts one clip.
	results := make(map[string]result)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, args := range plays {
		wg.Go(func() {
			sums, took, err := interop.VideoMD5s(ctx, args...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			t.Logf("%s: %d frames in %v", name, len(sums), took.Round(time.Millisecond))
			results[name] = result{sums, took}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	direct, seek := results["direct"], results["direct-seek"]
	if len(direct.sums) < 400 || len(seek.sums) < 200 {
		t.Fatalf("direct plays decoded %d and %d frames", len(direct.sums), len(seek.sums))
	}
	for name, want := range map[string]result{"miss-tcp": direct, "hit-tcp": direct, "hit-udp": direct, "hit-seek": seek} {
		got := results[name]
		if len(got.sums) != len(want.sums) {
			t.Errorf("%s: %d video frames, want %d", name, len(got.sums), len(want.sums))
			continue
		}
		for i := range got.sums {
			if got.sums[i] != want.sums[i] {
				t.Errorf("%s: video frame %d differs", name, i)
				break
			}
		}
		if lo, hi := want.took*9/10, want.took*11/10; got.took < lo || got.took > hi {
			t.Errorf("%s: took %v, direct %v: not within ±10%%", name, got.took, want.took)
		}
	}
	if d, p := o.Sessions(samplePath); p != 4 {
		t.Errorf("origin saw %d describes, %d plays; want 4 plays (fill, direct, direct-seek, miss)", d, p)
	}
	if got, want := ffprobeStreams(t, ctx, serverURL(s, "hit")), ffprobeStreams(t, ctx, originURL(o, samplePath)); got != want {
		t.Errorf("ffprobe through the server:\n%s\ndirect:\n%s", got, want)
	}
}
