package node_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestLiveRelaySourceDies: B relays a live stream from A; A stops; B goes on
// from the origin within 2 s and keeps growing its window.
func TestLiveRelaySourceDies(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	a := meshNode(t, org, nil)
	b := meshNode(t, org, nil, a)
	key, _ := node.CanonicalKey("rtsp://" + org.Addr() + "/live")
	if err := firstPacket(t.Context(), a.url("o/live")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a sealed live segment on A", func() bool {
		m, err := a.Store().Manifest(key)
		return err == nil && len(m.Segments) > 0
	})
	if err := firstPacket(t.Context(), b.url("o/live")); err != nil {
		t.Fatal(err)
	}
	in, _ := b.Stream("o/live")
	if in.Source != a.PeerID() {
		t.Fatalf("B's source %q, want A", in.Source)
	}
	// A player on B that must keep receiving after A is gone, without a reconnect.
	var stoppedAt atomic.Int64
	played := make(chan error, 1)
	go func() {
		played <- playUntilPacket(t.Context(), b.url("o/live"), func(*description.Media, *rtp.Packet) bool {
			at := stoppedAt.Load()
			return at != 0 && time.Since(time.Unix(0, at)) > 1500*time.Millisecond
		})
	}()
	a.stop()
	stopped := time.Now()
	stoppedAt.Store(stopped.UnixNano())
	var m store.Manifest
	eventually(t, 2*time.Second, "B relays from the origin", func() bool {
		var err error
		m, err = b.Store().Manifest(key)
		return err == nil && m.Source == "origin"
	})
	switched := time.Since(stopped)
	n := len(m.Segments)
	eventually(t, 3*time.Second, "B's window grows again", func() bool {
		m, err := b.Store().Manifest(key)
		return err == nil && len(m.Segments) > n+3
	})
	select {
	case err := <-played:
		if err != nil {
			t.Fatalf("player on B after A stopped: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the player on B received nothing 1.5 s after A stopped")
	}
	t.Logf("B switched to the origin %v after A stopped", switched)
}
