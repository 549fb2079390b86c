package node_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// gstPlay plays url with GStreamer's rtspsrc over transport ("tcp" or
// "udp") into fake sinks, one per track, until the player stops by itself
// or ctx ends. It returns when rtspsrc sent PLAY and when gst-launch ended,
// both from its start (gst-launch takes about 2 s to start on this machine),
// and its output.
func gstPlay(ctx context.Context, url, transport string) (play, end time.Duration, out string, err error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "gst-launch-1.0", "-e",
		"rtspsrc", "location="+url, "protocols="+transport, "name=src",
		"src.", "!", "queue", "!", "fakesink", "sync=false",
		"src.", "!", "queue", "!", "fakesink", "sync=false")
	cmd.Env = append(cmd.Environ(), "GST_DEBUG=rtspsrc:5", "GST_DEBUG_NO_COLOR=1")
	b, err := cmd.CombinedOutput()
	end = time.Since(start)
	out = string(b)
	// "0:00:02.024786043 14707 0x55… DEBUG rtspsrc gstrtspsrc.c:8827:gst_rtspsrc_play:<src> PLAY..."
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "gst_rtspsrc_play:") {
			if f := strings.Fields(line); len(f) > 0 {
				if h, m, s, ok := splitClock(f[0]); ok {
					play = h*time.Hour + m*time.Minute + s
				}
			}
			break
		}
	}
	return play, end, out, err
}

// splitClock reads GStreamer's debug clock "H:MM:SS.nnnnnnnnn".
func splitClock(v string) (h, m, s time.Duration, ok bool) {
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	hh, err1 := strconv.Atoi(parts[0])
	mm, err2 := strconv.Atoi(parts[1])
	ss, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return time.Duration(hh), time.Duration(mm), time.Duration(ss * float64(time.Second)), true
}

// TestGStreamerEndsAtVODEnd: GStreamer's rtspsrc, strict about RTCP (it
// ends a stream at a BYE only in a compound packet that starts with a sender
// report), stops by itself within 3 s of the end of a VOD played through a
// node, over TCP and UDP, as it does played from the origin directly.
func TestGStreamerEndsAtVODEnd(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	n := startNode(t, nodeConfig(t, org))
	clip, err := origin.Packetize(origin.SampleClip())
	if err != nil {
		t.Fatal(err)
	}
	plays := map[string][2]string{
		"origin tcp": {"rtsp://" + org.Addr() + "/sample.ts", "tcp"},
		"node tcp":   {n.url("o/sample.ts"), "tcp"},
		"node udp":   {n.url("o/sample.ts"), "udp"},
	}
	var wg sync.WaitGroup
	for name, p := range plays {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), clip.Duration+20*time.Second)
			defer cancel()
			play, end, out, err := gstPlay(ctx, p[0], p[1])
			lag := end - play - clip.Duration
			t.Logf("%s: PLAY %v after gst-launch started, which ended %v later: %v after the %v clip's end",
				name, play.Round(time.Millisecond), (end - play).Round(time.Millisecond), lag.Round(time.Millisecond), clip.Duration)
			if err != nil {
				// rtspsrc may still write (RTCP, TEARDOWN) to a connection
				// the server closed after TEARDOWN: an error of the
				// shutdown, after the end it is tested for.
				t.Logf("%s: gst-launch: %v after EOS: %s", name, err, gstTail(out))
			}
			switch {
			case ctx.Err() != nil:
				t.Errorf("%s: GStreamer did not end by itself within %v of the clip's end:\n%s", name, 20*time.Second, gstTail(out))
			case err != nil && !errorAfterEOS(out):
				t.Errorf("%s: gst-launch: %v\n%s", name, err, gstTail(out))
			case play == 0:
				t.Errorf("%s: no PLAY in GStreamer's log:\n%s", name, gstTail(out))
			case !strings.Contains(out, "Got EOS"):
				t.Errorf("%s: gst-launch ended without EOS:\n%s", name, gstTail(out))
			case lag > 3*time.Second:
				t.Errorf("%s: GStreamer ended %v after the clip's end, want within 3 s", name, lag)
			case lag < -time.Second:
				t.Errorf("%s: GStreamer ended %v before the clip's end", name, -lag)
			}
		})
	}
	wg.Wait()
}

// errorAfterEOS: gst-launch's first error came after the pipeline's EOS.
func errorAfterEOS(out string) bool {
	eos, bad := strings.Index(out, "Got EOS from element"), strings.Index(out, "\nERROR")
	return eos >= 0 && bad > eos
}

// gstTail is the end of a command's output and its error lines, for a
// failure message.
func gstTail(out string) string {
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ERROR") || strings.HasPrefix(l, "WARNING") || strings.HasPrefix(l, "Additional debug info") {
			errs = append(errs, l)
		}
	}
	if len(errs) > 0 {
		return strings.Join(errs, "\n")
	}
	if len(out) > 2000 {
		return "…" + out[len(out)-2000:]
	}
	return out
}
