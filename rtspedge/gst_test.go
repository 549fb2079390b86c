package rtspedge

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestGstVODIsOnDemand: a VOD of gst-rtsp-server is classified on demand
// (by its PLAY answer's Range), stored complete with its duration, and
// served from the store with Range honoured; its live stream is live.
func TestGstVODIsOnDemand(t *testing.T) {
	t.Parallel()
	clip := interop.H264AACMP4
	gst := interop.StartGstServer(t,
		interop.Mount{Path: "vod", Pipeline: clip.Pipeline(clip.Path(t))},
		interop.Mount{Path: "live", Pipeline: interop.LivePipeline, Live: true})

	live, err := OpenOrigin(t.Context(), OriginRequest{URL: gst.URL("live"), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open gst live: %v", err)
	}
	lm := live.Manifest()
	live.Close()
	if !lm.Live || lm.ClassReason != "SDP a=range:npt=now- has no end; no PLAY Range" {
		t.Errorf("gst live stream: live %v (%q), want live", lm.Live, lm.ClassReason)
	}

	st := newStore(t)
	m := fill(t, st, "gst-vod", gst.URL("vod"), OriginRequest{AskMetaInfo: true, Timeout: 10 * time.Second})
	t.Logf("gst VOD: live %v, duration %v, state %s, %d packets, reason %q", m.Live, m.Duration, m.State, m.Packets, m.ClassReason)
	if m.Live || m.State != store.StateComplete || absDur(m.Duration-interop.ClipDuration) > 100*time.Millisecond {
		t.Fatalf("gst VOD stored live %v, state %s, duration %v; want on demand, complete, %v", m.Live, m.State, m.Duration, interop.ClipDuration)
	}
	if !strings.HasPrefix(m.ClassReason, "PLAY Range npt=0-") || !strings.HasSuffix(m.ClassReason, " has an end") {
		t.Fatalf("reason %q, want the PLAY answer's range", m.ClassReason)
	}
	pkts := readAll(t, st, "gst-vod")
	if last := pkts[len(pkts)-1].TT; last < m.Duration-300*time.Millisecond || last > m.Duration {
		t.Fatalf("last packet at %v, want the end of the %v clip", last, m.Duration)
	}

	// From the store: a play at 3 s starts at the key frame there.
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})
	c, _, err := interop.SetUp(serverURL(s, "gst-vod"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Play(&headers.Range{Value: &headers.RangeNPT{Start: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Header["Range"], "npt=3.000-"+formatNPT(m.Duration); len(got) != 1 || got[0] != want {
		t.Fatalf("PLAY at 3 s answered Range %q, want %s", got, want)
	}
}
