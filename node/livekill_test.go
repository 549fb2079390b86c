package node_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
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
	testkit.Eventually(t, 10*time.Second, "a sealed live segment on A", func() bool {
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
	testkit.Eventually(t, 2*time.Second, "B relays from the origin", func() bool {
		var err error
		m, err = b.Store().Manifest(key)
		return err == nil && m.Source == "origin"
	})
	switched := time.Since(stopped)
	n := len(m.Segments)
	testkit.Eventually(t, 3*time.Second, "B's window grows again", func() bool {
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

// arrivals records when a player's packets arrived, and how far its video
// timestamps strayed from the wall clock between two packets.
type arrivals struct {
	mu     sync.Mutex
	times  []time.Time
	lastTS uint32
	lastAt time.Time
	stray  time.Duration // largest |Δ RTP time − Δ arrival| between video packets
	at     time.Time     // when that was
}

func (a *arrivals) add(at time.Time, medi *description.Media, pkt *rtp.Packet) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = append(a.times, at)
	if medi.Type == description.MediaTypeVideo {
		if !a.lastAt.IsZero() {
			media := time.Duration(int32(pkt.Timestamp-a.lastTS)) * time.Second / 90000
			if d := absDur(media - at.Sub(a.lastAt)); d > a.stray {
				a.stray, a.at = d, at
			}
		}
		a.lastTS, a.lastAt = pkt.Timestamp, at
	}
	return len(a.times)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// maxGapAfter is the longest time without a packet from since on, and how
// many packets came after since.
func (a *arrivals) maxGapAfter(since time.Time) (gap time.Duration, after int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := since
	for _, at := range a.times {
		if at.Before(since) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
		after++
	}
	return gap, after
}

// TestLiveFiveNodesOriginFacingNodeDies: players on five nodes watch one live
// stream through one origin session; the origin-facing node dies; the four
// others recover (from the origin or from another relay) within 2 s, and
// their players keep playing in the same RTSP session.
func TestLiveFiveNodesOriginFacingNodeDies(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
		c.RandomRTPBase = true // as a camera: each session numbers anew
	})
	fast := func(c *node.Config) { c.Mesh.FindTimeout = node.Duration(500 * time.Millisecond) }
	nodes := []*testNode{meshNode(t, org, fast)}
	nodes = append(nodes, meshNode(t, org, fast, nodes[0]))
	for range 3 {
		nodes = append(nodes, meshNode(t, org, fast, nodes[0], nodes[1]))
	}
	if err := firstPacket(t.Context(), nodes[0].url("o/live")); err != nil {
		t.Fatal(err)
	}

	const after = 4 * time.Second // how long the players must go on after the death
	var killedAt atomic.Int64
	players := make([]*arrivals, len(nodes))
	started := make(chan int, len(nodes))
	done := make(chan error, len(nodes))
	for i := 1; i < len(nodes); i++ {
		players[i] = &arrivals{}
		go func() {
			done <- playUntilPacket(t.Context(), nodes[i].url("o/live"), func(medi *description.Media, pkt *rtp.Packet) bool {
				if players[i].add(time.Now(), medi, pkt) == 1 {
					started <- i
				}
				k := killedAt.Load()
				return k != 0 && time.Since(time.Unix(0, k)) > after
			})
		}()
		<-started // one at a time: each node finds the ones before it
	}
	if _, plays := org.Sessions("live"); plays != 1 {
		t.Fatalf("origin sessions with players on five nodes: %d, want 1", plays)
	}
	sources := map[string]string{}
	for i, n := range nodes[1:] {
		in, err := n.Stream("o/live")
		if err != nil || in.Source == "origin" {
			t.Fatalf("node %d: %+v, %v; want a relay", i+1, in, err)
		}
		sources[n.PeerID()] = in.Source
	}
	// The node whose players made the origin session dies.
	dead := nodes[0].PeerID()
	nodes[0].stop()
	killed := time.Now()
	killedAt.Store(killed.UnixNano())
	for range nodes[1:] {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("a player after the origin-facing node died: %v", err)
			}
		case <-time.After(after + 20*time.Second):
			t.Fatal("a player stopped receiving after the origin-facing node died")
		}
	}
	for i, n := range nodes[1:] {
		gap, got := players[i+1].maxGapAfter(killed)
		in, _ := n.Stream("o/live")
		t.Logf("node %d: relayed from %s before; now from %s; longest gap after the death %v (%d packets since)",
			i+1, short(sources[n.PeerID()]), short(in.Source), gap.Round(time.Millisecond), got)
		if gap > 2*time.Second {
			t.Errorf("node %d: its player waited %v for a packet after the origin-facing node died, want ≤ 2 s", i+1, gap)
		}
		// The stream goes on where it was: no jump in the video timestamps
		// (beyond jitter and frame reordering) at the switch.
		if p := players[i+1]; p.stray > time.Second {
			t.Errorf("node %d: video timestamps strayed %v from the wall clock between two packets (%v after the death)",
				i+1, p.stray.Round(time.Millisecond), p.at.Sub(killed).Round(time.Millisecond))
		}
		if in.Source == dead {
			t.Errorf("node %d still names the dead node as its source", i+1)
		}
	}
	_, plays := org.Sessions("live")
	t.Logf("origin sessions after recovery: %d in all", plays)
}

func short(id string) string {
	if len(id) > 8 {
		return "…" + id[len(id)-6:]
	}
	return id
}

// TestLiveOriginEndsStream: the origin ends a live stream (RTCP BYE, then
// the path is gone); the players on the origin-facing node A and on B,
// relaying from A, both get a clean end, and B takes the end from A rather
// than going to the origin for it.
func TestLiveOriginEndsStream(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, liveOrigin)
	a := meshNode(t, org, nil)
	b := meshNode(t, org, nil, a)
	pa := startReconnectPlayer(t, a.url("o/live"))
	testkit.Eventually(t, 10*time.Second, "packets on A", func() bool { return len(pa.packets()) > 0 })
	pb := startReconnectPlayer(t, b.url("o/live"))
	testkit.Eventually(t, 10*time.Second, "packets on B", func() bool { return len(pb.packets()) > 0 })
	if in, _ := b.Stream("o/live"); in.Source != a.PeerID() {
		t.Fatalf("B's source %q, want A", in.Source)
	}
	if n := org.EndLive("live"); n != 1 {
		t.Fatalf("the origin ended %d sessions, want 1 (A's)", n)
	}
	ended := time.Now()
	for name, p := range map[string]*reconnectPlayer{"A": pa, "B": pb} {
		testkit.Eventually(t, 10*time.Second, "an RTCP BYE on "+name, func() bool { return !p.bye().IsZero() })
		t.Logf("player on %s: BYE %v after the origin ended the stream", name, p.bye().Sub(ended).Round(time.Millisecond))
	}
	key, _ := node.CanonicalKey("rtsp://" + org.Addr() + "/live")
	for name, n := range map[string]*testNode{"A": a, "B": b} {
		m, err := n.Store().Manifest(key)
		if err != nil || m.State != store.StatePartial || !m.Ended {
			t.Errorf("%s's recording: state %s ended %v (%v), want partial and ended", name, m.State, m.Ended, err)
		}
	}
	if in, _ := b.Stream("o/live"); in.Source != a.PeerID() {
		t.Errorf("B's source after the end: %q, want A still", in.Source)
	}
}
