package rtspedge

import (
	"bufio"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/rtspmesh/rtspmesh/store"
)

// makeMP4 encodes a test pattern of dur as H.264 in an MP4 (one key frame
// a second) and returns its path.
func makeMP4(t testing.TB, dur time.Duration) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.CommandContext(t.Context(), "ffmpeg", "-v", "error", "-f", "lavfi",
		"-i", "testsrc=size=320x240:rate=25", "-t", formatNPT(dur),
		"-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return out
}

// startGstOrigin runs gst-rtsp-server (testdata/gst-origin.py) serving vod
// at /vod and a live test pattern at /live; it returns the server's base
// URL. The server stops when the test ends (its stdin closes).
func startGstOrigin(t testing.TB, vod string) string {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "testdata/gst-origin.py", vod)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gst-rtsp-server: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	port := make(chan string, 1)
	go func() {
		defer close(exited)
		out := bufio.NewReader(stdout)
		line, _ := out.ReadString('\n')
		port <- strings.TrimSpace(strings.TrimPrefix(line, "PORT "))
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()
	select {
	case p := <-port:
		if p == "" {
			t.Fatalf("gst-rtsp-server printed no port: %s", stderr.String())
		}
		return "rtsp://127.0.0.1:" + p
	case <-time.After(20 * time.Second):
		t.Fatalf("gst-rtsp-server did not start in 20s: %s", stderr.String())
	}
	return ""
}

// TestGstVODIsOnDemand: a VOD of gst-rtsp-server is classified on demand
// (by its PLAY answer's Range), stored complete with its duration, and
// served from the store with Range honoured; its live stream is live.
func TestGstVODIsOnDemand(t *testing.T) {
	t.Parallel()
	gst := startGstOrigin(t, makeMP4(t, 5*time.Second))

	live, err := OpenOrigin(t.Context(), OriginRequest{URL: gst + "/live", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open gst live: %v", err)
	}
	lm := live.Manifest()
	live.Close()
	if !lm.Live || lm.ClassReason != "SDP a=range:npt=now- has no end; no PLAY Range" {
		t.Errorf("gst live stream: live %v (%q), want live", lm.Live, lm.ClassReason)
	}

	st := newStore(t)
	m := fill(t, st, "gst-vod", gst+"/vod", OriginRequest{AskMetaInfo: true, Timeout: 10 * time.Second})
	t.Logf("gst VOD: live %v, duration %v, state %s, %d packets, reason %q", m.Live, m.Duration, m.State, m.Packets, m.ClassReason)
	if m.Live || m.State != store.StateComplete || m.Duration != 5*time.Second {
		t.Fatalf("gst VOD stored live %v, state %s, duration %v; want on demand, complete, 5s", m.Live, m.State, m.Duration)
	}
	if m.ClassReason != "PLAY Range npt=0-5 has an end" {
		t.Fatalf("reason %q", m.ClassReason)
	}
	pkts := readAll(t, st, "gst-vod")
	if last := pkts[len(pkts)-1].TT; last < 4800*time.Millisecond || last > 5*time.Second {
		t.Fatalf("last packet at %v, want the end of a 5 s clip", last)
	}

	// From the store: a play at 3 s starts at the key frame there.
	recs := newTestRecordings(t, st)
	s := startServer(t, ServerConfig{Recordings: recs})
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Transport: &tcp}
	u, err := base.ParseURL(serverURL(s, "gst-vod"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	res, err := c.Play(&headers.Range{Value: &headers.RangeNPT{Start: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Header["Range"]; len(got) != 1 || got[0] != "npt=3.000-5.000" {
		t.Fatalf("PLAY at 3 s answered Range %q, want npt=3.000-5.000", got)
	}
}
