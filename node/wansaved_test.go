package node_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// shortClip makes a clip like the sample (H.264 + AAC in MPEG-TS, a key
// frame every second) that lasts d, so a test can play it to the end.
func shortClip(t *testing.T, d time.Duration) []byte {
	t.Helper()
	return sourceClip(t, "testsrc2", d)
}

// sourceClip is shortClip with the picture of the lavfi video source src
// (e.g. "testsrc2", "smptebars"): two sources give two clips whose frames
// differ but whose descriptions are the same.
func sourceClip(t *testing.T, src string, d time.Duration) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), src+".ts")
	cmd := exec.CommandContext(t.Context(), "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", src+"=size=320x180:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", d.String(), "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		"-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-c:a", "aac", "-ac", "1", "-ar", "48000", "-f", "mpegts", f)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// playToEnd plays url over TCP until the node's RTCP BYE on every track
// (sent after the last packet) and returns the RTP bytes received: header
// and payload, as the node counts what it sends.
func playToEnd(t *testing.T, url string) uint64 {
	t.Helper()
	c, desc, err := interop.SetUp(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var (
		mu    sync.Mutex
		bytes uint64
		byes  = make(map[*description.Media]bool)
		ended = make(chan struct{})
	)
	c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, p *rtp.Packet) {
		mu.Lock()
		bytes += uint64(p.MarshalSize())
		mu.Unlock()
	})
	c.OnPacketRTCPAny(func(m *description.Media, p rtcp.Packet) {
		if _, ok := p.(*rtcp.Goodbye); !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		byes[m] = true
		if len(byes) == len(desc.Medias) {
			close(ended)
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("play %s: %v", url, err)
	}
	select {
	case <-ended:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no RTCP BYE on every track within 60s", url)
	}
	mu.Lock()
	defer mu.Unlock()
	return bytes
}

// TestWANSavedExact: WAN bytes saved count what players were sent in
// sessions that did not pull from an origin. On A, a miss (filled from the
// origin) played to the end saves nothing; a hit played to the end saves
// the whole recording. On B, a play filled from A saves it too.
func TestWANSavedExact(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) { c.Media["short.ts"] = shortClip(t, 3*time.Second) })
	a, baseA := adminNode(t, org, nil)
	status := func(base string) node.NodeStatus {
		return getJSON[node.NodeStatus](t, "GET", base+"/api/v1/node", "", "", http.StatusOK)
	}
	const path = "o/short.ts"

	playToEnd(t, a.url(path)) // a miss: A fills from the origin
	in := waitCompleteAt(t, a, path)
	waitNoFill(t, baseA) // else the hit may join the ending fill
	if st := status(baseA); st.WANSaved != 0 || st.FillBytesOrigin != in.Bytes {
		t.Fatalf("after a miss: wan_saved_bytes %d (want 0), fill_bytes_origin %d (want %d)", st.WANSaved, st.FillBytesOrigin, in.Bytes)
	}
	missSent := status(baseA).PlayerBytes
	hit := playToEnd(t, a.url(path))
	st := status(baseA)
	if hit == 0 || st.WANSaved != hit || st.PlayerBytes != missSent+hit || st.FillBytesOrigin != in.Bytes {
		t.Fatalf("after a miss (%d bytes sent) and a hit (%d bytes received): wan_saved_bytes %d (want %d), player_sent_bytes %d (want %d), fill_bytes_origin %d (want %d)",
			missSent, hit, st.WANSaved, hit, st.PlayerBytes, missSent+hit, st.FillBytesOrigin, in.Bytes)
	}
	for series, want := range map[string]uint64{
		`rtspmesh_wan_saved_bytes_total`:                      hit,
		`rtspmesh_player_served_bytes_total{served="origin"}`: missSent,
		`rtspmesh_player_served_bytes_total{served="local"}`:  hit,
		`rtspmesh_player_sent_bytes_total`:                    missSent + hit,
	} {
		if got := metricValue(t, baseA, "", series); got != float64(want) {
			t.Errorf("A: %s = %v, want %d", series, got, want)
		}
	}

	// Through the mesh: B fills from A; its player's bytes came from no origin.
	b, baseB := adminNode(t, org, nil, a)
	got := playToEnd(t, b.url(path))
	waitCompleteAt(t, b, path)
	st = status(baseB)
	if got == 0 || st.WANSaved != got || st.PlayerBytes != got || st.FillBytesPeer != in.Bytes || st.FillBytesOrigin != 0 {
		t.Fatalf("B after a play filled from A (%d bytes received): wan_saved_bytes %d, player_sent_bytes %d (want both %d), fill_bytes_peer %d (want %d), fill_bytes_origin %d (want 0)",
			got, st.WANSaved, st.PlayerBytes, got, st.FillBytesPeer, in.Bytes, st.FillBytesOrigin)
	}
	if v := metricValue(t, baseB, "", `rtspmesh_player_served_bytes_total{served="peer"}`); v != float64(got) {
		t.Errorf("B: player bytes served from a peer = %v, want %d", v, got)
	}
	if _, plays := org.Sessions("short.ts"); plays != 1 {
		t.Fatalf("origin sessions: %d, want 1 for the whole sequence", plays)
	}
}

// waitCompleteAt waits until n's recording of path is complete.
func waitCompleteAt(t testing.TB, n *testNode, path string) store.Info {
	t.Helper()
	var in store.Info
	testkit.Eventually(t, 60*time.Second, path+" complete", func() bool {
		var err error
		in, err = n.Stream(path)
		return err == nil && in.State == store.StateComplete
	})
	return in
}
