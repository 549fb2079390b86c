package node_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestLiveOneUpstreamThenLinger: players of a live stream on one node share
// one origin session; ffprobe's first decoded frame through the node is a key
// frame; the upstream stops cache.live_linger after the last player left.
func TestLiveOneUpstreamThenLinger(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	cfg := nodeConfig(t, org)
	cfg.Cache.LiveLinger = node.Duration(300 * time.Millisecond)
	n := startNode(t, cfg)

	// A player that stays until ffprobe is done: the others leave at once,
	// and a slow ffprobe start must not find the upstream lingered out.
	probed, holding := make(chan struct{}), make(chan struct{})
	var once sync.Once
	holder := make(chan error, 1)
	go func() {
		holder <- playUntilPacket(t.Context(), n.url("o/live"), func(*description.Media, *rtp.Packet) bool {
			once.Do(func() { close(holding) })
			select {
			case <-probed:
				return true
			default:
				return false
			}
		})
	}()
	select {
	case <-holding:
	case err := <-holder:
		t.Fatalf("the player that stays: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	firsts := make([]map[description.MediaType]*rtp.Packet, 3)
	for i := range errs {
		wg.Go(func() { firsts[i], errs[i] = firstPackets(t.Context(), n.url("o/live")) })
	}
	var keyFrames []string
	wg.Go(func() { keyFrames = probeKeyFrames(t, n.url("o/live")) })
	wg.Wait()
	close(probed)
	if err := <-holder; err != nil {
		t.Fatalf("the player that stays: %v", err)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range firsts {
		v := f[description.MediaTypeVideo]
		if _, keyStart := metainfo.FrameTypeH264(v.Payload); !keyStart {
			t.Errorf("player %d: first video packet does not start a key frame", i)
		}
	}
	if len(keyFrames) == 0 || keyFrames[0] != "1" {
		t.Fatalf("first decoded frames' key flags %v: want a key frame first", keyFrames)
	}
	if _, plays := org.Sessions("live"); plays != 1 {
		t.Fatalf("origin sessions for the live stream: %d, want 1", plays)
	}
	in, err := n.Stream("o/live")
	if err != nil || !in.Live {
		t.Fatalf("live recording: %+v, %v", in, err)
	}
	// Every player has gone: the upstream closes after the linger.
	testkit.Eventually(t, 10*time.Second, "live upstream closed", func() bool {
		in, err := n.Stream("o/live")
		return err == nil && in.State == store.StatePartial
	})
}

// probeKeyFrames returns ffprobe's key_frame flags of the first ~2 s of
// video decoded from url.
func probeKeyFrames(t *testing.T, url string) []string {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		"-read_intervals", "%+2", "-select_streams", "v:0", "-show_entries", "frame=key_frame",
		"-of", "csv=p=0", url)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Errorf("ffprobe %s: %v\n%s", url, err, errb.String())
		return nil
	}
	var flags []string
	for _, f := range strings.Fields(out.String()) {
		flags = append(flags, strings.Trim(f, ","))
	}
	return flags
}

// TestLiveAcrossFiveNodes: players on five nodes of a mesh watch one live
// stream; the first node pulls it from the origin and the others relay it
// from their neighbours, so the origin serves one session.
func TestLiveAcrossFiveNodes(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	nodes := []*testNode{meshNode(t, org, nil)}
	for range 4 {
		nodes = append(nodes, meshNode(t, org, nil, nodes[0]))
	}
	for i, n := range nodes {
		f, err := firstPackets(t.Context(), n.url("o/live"))
		if err != nil {
			t.Fatalf("player on node %d: %v", i, err)
		}
		if _, keyStart := metainfo.FrameTypeH264(f[description.MediaTypeVideo].Payload); !keyStart {
			t.Errorf("player on node %d: first video packet does not start a key frame", i)
		}
	}
	// ffmpeg decodes the relayed stream from a key frame on.
	if k := probeKeyFrames(t, nodes[4].url("o/live")); len(k) < 25 || k[0] != "1" {
		t.Fatalf("ffprobe through a relay: key flags %v, want a key frame first and 1 s of frames", k)
	}
	if _, plays := org.Sessions("live"); plays != 1 {
		t.Fatalf("origin sessions for the live stream: %d, want 1 for the whole mesh", plays)
	}
	for i, n := range nodes[1:] {
		in, err := n.Stream("o/live")
		if err != nil || in.Source == "origin" || !in.Live {
			t.Fatalf("node %d: live recording %+v (%v), want one relayed from a peer", i+1, in, err)
		}
	}
}
