package node_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

const samplePath = "o/sample.ts"

// TestMissThenHitMatchesOrigin: ffmpeg decodes the same frames from the
// origin directly, through the node on a miss (TCP), and on hits over TCP
// and UDP; the origin served one play.
func TestMissThenHitMatchesOrigin(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	n := startNode(t, nodeConfig(t, org))

	var direct, miss []string
	var wg sync.WaitGroup
	wg.Go(func() { direct = frameMD5(t, "rtsp://"+org.Addr()+"/sample.ts", "tcp") })
	wg.Go(func() { miss = frameMD5(t, n.url(samplePath), "tcp") })
	wg.Wait()
	sameFrames(t, "miss through the node", miss, direct)

	testkit.Eventually(t, 30*time.Second, "recording complete", func() bool {
		in, err := n.Stream(samplePath)
		return err == nil && in.State == store.StateComplete
	})
	var hitTCP, hitUDP []string
	wg.Go(func() { hitTCP = frameMD5(t, n.url(samplePath), "tcp") })
	wg.Go(func() { hitUDP = frameMD5(t, n.url(samplePath), "udp") })
	wg.Wait()
	sameFrames(t, "hit over TCP", hitTCP, direct)
	sameFrames(t, "hit over UDP", hitUDP, direct)

	// One play for the direct decode, one for the node's fill.
	if _, plays := org.Sessions("sample.ts"); plays != 2 {
		t.Fatalf("origin served %d plays, want 2 (direct + one fill)", plays)
	}
}

// TestColdStreamManyPlayersOneOriginSession: 20 players starting together on
// a cold stream make exactly one origin session.
func TestColdStreamManyPlayersOneOriginSession(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	n := startNode(t, nodeConfig(t, org))

	const players = 20
	errs := make(chan error, players)
	var wg sync.WaitGroup
	for range players {
		wg.Go(func() { errs <- firstPacket(t.Context(), n.url(samplePath)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, plays := org.Sessions("sample.ts"); plays != 1 {
		t.Fatalf("origin sessions: %d, want 1", plays)
	}
}

// firstPacket plays url until its first RTP packet arrives.
func firstPacket(ctx context.Context, url string) error {
	return playUntilPacket(ctx, url, nil)
}

// firstPackets plays url until its first video packet arrives and returns
// the first packet of each media that has sent one by then, by media type.
func firstPackets(ctx context.Context, url string) (map[description.MediaType]*rtp.Packet, error) {
	var mu sync.Mutex
	first := make(map[description.MediaType]*rtp.Packet)
	err := playUntilPacket(ctx, url, func(m *description.Media, p *rtp.Packet) bool {
		mu.Lock()
		defer mu.Unlock()
		if first[m.Type] == nil {
			first[m.Type] = p.Clone()
		}
		return first[description.MediaTypeVideo] != nil
	})
	mu.Lock()
	defer mu.Unlock()
	return first, err
}

// playUntilPacket plays url until enough says the packets seen so far are
// enough (nil: the first packet is).
func playUntilPacket(ctx context.Context, url string, enough func(*description.Media, *rtp.Packet) bool) error {
	c, _, err := interop.SetUp(url)
	if err != nil {
		return err
	}
	defer c.Close()
	got := make(chan struct{}, 1)
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, p *rtp.Packet) {
		if enough != nil && !enough(m, p) {
			return
		}
		select {
		case got <- struct{}{}:
		default:
		}
	})
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	select {
	case <-got:
		return nil
	case <-time.After(20 * time.Second):
		return errors.New("no packet within 20s")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// describeStatus sends DESCRIBE for url and returns the RTSP status code.
func describeStatus(t *testing.T, url string) (base.StatusCode, time.Duration) {
	t.Helper()
	code, _, took := describeAnswer(t, url)
	return code, took
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	// An origin address nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	cfg := nodeConfig(t, org)
	cfg.Origins = append(cfg.Origins, nodeOrigin("dead", "rtsp://"+dead))
	n := startNode(t, cfg)

	for _, tc := range []struct {
		name, path string
		want       base.StatusCode
	}{
		{"unknown origin", "nosuch/sample.ts", base.StatusNotFound},
		{"traversal", "o/../../etc/passwd", base.StatusBadRequest},
		{"encoded slash", "o/a%2f..%2fb", base.StatusBadRequest},
		{"absolute url in path", "o/rtsp://evil.example/x", base.StatusBadRequest},
		{"unreachable origin", "dead/sample.ts", base.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, took := describeStatus(t, n.url(tc.path))
			if code != tc.want {
				t.Fatalf("DESCRIBE %s: status %d, want %d", tc.path, code, tc.want)
			}
			if limit := 3*time.Second + 2*time.Second; took > limit {
				t.Fatalf("DESCRIBE %s took %s, want within origin_timeout (+slack) %s", tc.path, took, limit)
			}
		})
	}
	infos, err := n.Store().List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 0 {
		t.Fatalf("bad requests stored %d recordings, want none: %+v", len(infos), infos)
	}
}

// TestOriginDiesMidStream: the player gets a clean end, the recording is
// partial (never complete), and the node keeps serving.
func TestOriginDiesMidStream(t *testing.T) {
	t.Parallel()
	org, stopOrigin := startOriginStoppable(t, nil)
	n := startNode(t, nodeConfig(t, org))

	if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "a sealed segment", func() bool {
		m, err := n.Store().Manifest(storeKey(t, org))
		return err == nil && len(m.Segments) > 0
	})
	stopOrigin()
	testkit.Eventually(t, 20*time.Second, "recording partial", func() bool {
		in, err := n.Stream(samplePath)
		return err == nil && in.State == store.StatePartial
	})
	// The node still answers.
	if code, _ := describeStatus(t, n.url("nosuch/x")); code != base.StatusNotFound {
		t.Fatalf("node after origin death: DESCRIBE status %d, want 404", code)
	}
}

// TestNoCacheRelayedNotStored: an origin that says Cache-Control: no-cache
// is relayed to players but nothing of it reaches the node's store.
func TestNoCacheRelayedNotStored(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.CacheControl = map[string]string{"sample.ts": "no-cache"}
	})
	n := startNode(t, nodeConfig(t, org))
	if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	if in, err := n.Stream(samplePath); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("uncacheable stream in the store: %+v, %v", in, err)
	}
	infos, err := n.Store().List()
	if err != nil || len(infos) != 0 {
		t.Fatalf("store lists %d recordings (%v), want none", len(infos), err)
	}
}
