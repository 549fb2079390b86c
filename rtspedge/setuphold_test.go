package rtspedge

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// gortsplibSetupHold is how long gortsplib v4.16.2 holds its answer to a
// SETUP from a GStreamer user agent (rtspedge/setuphold).
const gortsplibSetupHold = time.Second

// TestGStreamerSetupAnsweredAtOnce: the node's server and the built-in
// origin answer a GStreamer player's SETUPs (video and audio, one after the
// other, as rtspsrc sends them) without gortsplib's hold: both in less than
// one hold, where they took two (a GStreamer pipeline started 2 s late).
func TestGStreamerSetupAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	o, _ := startOrigin(t, origin.Config{})
	st := newStore(t)
	fill(t, st, "sample", originURL(o, samplePath), OriginRequest{AskMetaInfo: true, Speed: 8})
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})
	for name, url := range map[string]string{"node": serverURL(s, "sample"), "origin": originURL(o, samplePath)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			took, tracks := setupAs(t, url, "GStreamer/1.22.0")
			if tracks != 2 {
				t.Fatalf("%d tracks set up, want 2", tracks)
			}
			if took >= gortsplibSetupHold {
				t.Errorf("the SETUPs of %d tracks took %s: held (gortsplib holds a GStreamer SETUP for %s)", tracks, took, gortsplibSetupHold)
			}
		})
	}
}

// setupAs sets up every track of url over TCP as user agent ua and returns
// how long the SETUPs took and how many tracks there were.
func setupAs(t *testing.T, url, ua string) (time.Duration, int) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, UserAgent: ua, Transport: &tcp}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	return time.Since(start), len(desc.Medias)
}
