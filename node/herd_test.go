package node_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// herdNodes is how many nodes a herd test meshes: one office each.
const herdNodes = 8

// herdMesh starts n nodes, each bootstrapped from every node before it,
// and waits until every node knows all n as members (the filler rule's
// view), so the nodes agree on every stream's filler.
func herdMesh(t testing.TB, org *origin.Origin, n int, mod func(*node.Config)) []*testNode {
	t.Helper()
	nodes := make([]*testNode, 0, n)
	for range n {
		cfg := nodeConfig(t, org)
		cfg.Cache.LiveLinger = node.Duration(200 * time.Millisecond)
		// A loaded test machine (the race detector, parallel tests) can
		// take more than the default second to accept; a filler that does
		// not is taken over, which would count as a second session here.
		cfg.Mesh.FillerReach = node.Duration(5 * time.Second)
		// Every player of the test comes from 127.0.0.1, and VOD rounds
		// overlap (a fill goes on after its player took its first packet).
		cfg.Fills.MaxConcurrent, cfg.Fills.MaxPerClient = 256, 256
		for _, b := range nodes {
			cfg.Mesh.Bootstrap = append(cfg.Mesh.Bootstrap, b.MeshAddrs()...)
		}
		if mod != nil {
			mod(&cfg)
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	waitMembers(t, nodes, n)
	return nodes
}

// waitMembers waits until every node of nodes knows want members.
func waitMembers(t testing.TB, nodes []*testNode, want int) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, fmt.Sprintf("every node knows %d members", want), func() bool {
		for _, n := range nodes {
			if len(node.MeshOf(n.Node).Members()) != want {
				return false
			}
		}
		return true
	})
}

// fillerOf is the node of nodes that nodes[0] sees as path's filler.
func fillerOf(t testing.TB, org *origin.Origin, nodes []*testNode, path string) *testNode {
	t.Helper()
	key, err := node.CanonicalKey("rtsp://" + org.Addr() + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	id := node.MeshOf(nodes[0].Node).Filler(key, nil).ID
	for _, n := range nodes {
		if n.PeerID() == id {
			return n
		}
	}
	t.Fatalf("filler %s of %s is none of the nodes", id, path)
	return nil
}

// filledBy is the first of first and candidates (a format with %d, 0 to
// 15) whose designated filler among members is n by the rule
// (mesh.ClosestMember); the rule hashes random peer ids, so a test that
// needs n to fill from the origin picks its stream this way.
func filledBy(t testing.TB, org *origin.Origin, members []*testNode, n *testNode, first, candidates string) string {
	t.Helper()
	for i := -1; i < 16; i++ {
		path := first
		if i >= 0 {
			path = fmt.Sprintf(candidates, i)
		}
		if fillerIs(t, org, members, n, path) {
			return path
		}
	}
	t.Fatalf("none of %s and %s (0..15) is filled by %s", first, candidates, n.PeerID())
	return ""
}

// fillerIs says whether n is the designated filler of path (o/…) among
// members by the rule.
func fillerIs(t testing.TB, org *origin.Origin, members []*testNode, n *testNode, path string) bool {
	t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.PeerID()
	}
	key, err := node.CanonicalKey("rtsp://" + org.Addr() + "/" + strings.TrimPrefix(path, "o/"))
	if err != nil {
		t.Fatal(err)
	}
	return mesh.ClosestMember(key, ids, nil) == n.PeerID()
}

// fillerFirst returns nodes reordered so that path's (o/…) designated
// filler comes first, once every node knows every other: tests written for
// "the first node pulls from the origin, the others relay from it" call the
// filler their first node.
func fillerFirst(t testing.TB, org *origin.Origin, path string, nodes ...*testNode) []*testNode {
	t.Helper()
	waitMembers(t, nodes, len(nodes))
	for i, n := range nodes {
		if fillerIs(t, org, nodes, n, path) {
			out := []*testNode{n}
			out = append(out, nodes[:i]...)
			return append(out, nodes[i+1:]...)
		}
	}
	t.Fatalf("no node is the filler of %s", path)
	return nil
}

// joinLater connects n, started alone, to the mesh of to, and waits until
// both know each other as members.
func joinLater(t testing.TB, n, to *testNode) {
	t.Helper()
	if err := node.MeshOf(n.Node).Connect(t.Context(), to.MeshAddrs()[0]); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, []*testNode{n, to}, 2)
}

// herdRound starts one player per node at the same instant on path and
// waits until each has its first packet.
func herdRound(t *testing.T, nodes []*testNode, path string) {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := firstPacket(ctx, n.url("o/"+path)); err != nil {
				t.Errorf("player on %s: %v", n.PeerID(), err)
			}
		})
	}
	close(start)
	wg.Wait()
}

// herdOrigin serves rounds fresh paths named prefix00… of the sample clip,
// live or VOD, refusing a second concurrent session of a path when max is 1.
func herdOrigin(t testing.TB, prefix string, rounds int, live bool, max int) *origin.Origin {
	return startOrigin(t, func(c *origin.Config) {
		media := map[string][]byte{}
		for i := range rounds {
			media[fmt.Sprintf("%s%02d", prefix, i)] = origin.SampleClip()
		}
		media["reference.ts"] = origin.SampleClip()
		if live {
			c.Live = media
		} else {
			c.Media = media
		}
		c.MaxSessions = max
	})
}

// TestHerdOneOriginSession: eight nodes, one player per node pressing play
// at the same instant on a stream nobody has played, 20 rounds of fresh
// streams, VOD and live: the origin sees exactly one session per round.
// VOD's first round decodes with ffmpeg on every node (framemd5 identical
// to the origin's); live runs with origins[].max_sessions 1 against an
// origin that refuses a second concurrent session, which never happens.
func TestHerdOneOriginSession(t *testing.T) {
	t.Parallel()
	const rounds = 20
	for _, live := range []bool{false, true} {
		name, prefix := "vod", "v"
		if live {
			name, prefix = "live", "l"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			max := 0
			if live {
				max = 1
			}
			org := herdOrigin(t, prefix, rounds, live, max)
			nodes := herdMesh(t, org, herdNodes, func(c *node.Config) { c.Origins[0].MaxSessions = max })
			// VOD's round 0 decodes for 20 s (the clip, at the origin's
			// pace): it runs beside the others, on its own stream.
			var frames sync.WaitGroup
			if !live {
				frames.Go(func() { herdFrames(t, org, nodes, prefix+"00") })
			}
			for r := range rounds {
				if r > 0 || live {
					herdRound(t, nodes, fmt.Sprintf("%s%02d", prefix, r))
				}
			}
			frames.Wait()
			var figures []int
			for r := range rounds {
				path := fmt.Sprintf("%s%02d", prefix, r)
				_, plays := org.Sessions(path)
				figures = append(figures, plays)
				if refused, _ := org.Refused(path); refused != 0 {
					t.Errorf("round %d: the origin refused %d sessions", r, refused)
				}
				if plays != 1 {
					t.Errorf("round %d (%s): %d origin sessions, want 1 (filler %s)", r, path, plays, fillerOf(t, org, nodes, path).PeerID())
				}
			}
			t.Logf("%s: origin sessions per round over %d rounds of %d players: %v", name, rounds, len(nodes), figures)
		})
	}
}

// herdFrames plays path on every node at once, with ffmpeg on the first
// framesSample nodes (more parallel decodes than that fall behind on a
// loaded 2-core machine) and checks that their frames are the origin's
// (decoded from another path of the same clip, so the reference is not an
// origin session of path); the other nodes' players take a first packet.
func herdFrames(t *testing.T, org *origin.Origin, nodes []*testNode, path string) {
	t.Helper()
	const framesSample = 3
	var want []string
	got := make([][]string, framesSample)
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { want = frameMD5(t, "rtsp://"+org.Addr()+"/reference.ts", "tcp") })
	for i, n := range nodes {
		wg.Go(func() {
			<-start
			if i < framesSample {
				got[i] = frameMD5(t, n.url("o/"+path), "tcp")
			} else if err := firstPacket(t.Context(), n.url("o/"+path)); err != nil {
				t.Errorf("player on %s: %v", n.PeerID(), err)
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range framesSample {
		sameFrames(t, fmt.Sprintf("node %d", i), got[i], want)
	}
}

// TestHerdFillerKilled: the designated filler of a stream that players on
// the seven other nodes are playing stops mid-fill: the next closest node
// takes over with one more origin session at most (max_sessions 1 against
// an origin that refuses a second), and every player goes on receiving
// without reconnecting. VOD and live. The stopped filler closed its origin
// session, but the origin may not have let it go when the next filler's
// SETUP arrives: refused (453) then, the next filler tries again
// (node/fill's open; ci35, loaded, saw one refusal before the node tried
// again, and the players got nothing for 20 s).
func TestHerdFillerKilled(t *testing.T) {
	t.Parallel()
	for _, live := range []bool{false, true} {
		name := "vod"
		if live {
			name = "live"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			org := herdOrigin(t, "k", 1, live, 1)
			// Speed 1: the filler is killed mid-fill, which at the
			// default Speed 8 would last only 2.5 s.
			nodes := herdMesh(t, org, herdNodes, func(c *node.Config) { c.Origins[0].MaxSessions, c.Origins[0].Speed = 1, new(1.0) })
			path := "k00"
			filler := fillerOf(t, org, nodes, path)
			var killedAt atomic.Int64
			type result struct {
				n   *testNode
				err error
			}
			results := make(chan result, len(nodes))
			var started sync.WaitGroup
			for _, n := range nodes {
				if n == filler {
					continue
				}
				started.Add(1)
				var once sync.Once
				go func() {
					err := playUntilPacket(t.Context(), n.url("o/"+path), func(*description.Media, *rtp.Packet) bool {
						once.Do(started.Done)
						at := killedAt.Load()
						return at != 0 && time.Since(time.Unix(0, at)) > 2*time.Second
					})
					results <- result{n, err}
				}()
			}
			started.Wait()
			// Mid-fill: the VOD clip lasts 20 s at the origin's pace.
			if _, plays := org.Sessions(path); plays != 1 {
				t.Fatalf("before the kill: %d origin sessions, want 1", plays)
			}
			filler.stop()
			killedAt.Store(time.Now().UnixNano())
			for range len(nodes) - 1 {
				select {
				case r := <-results:
					if r.err != nil {
						t.Errorf("player on %s after the filler stopped: %v", r.n.PeerID(), r.err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("a player received nothing 2 s after the filler stopped")
				}
			}
			_, plays := org.Sessions(path)
			refused, _ := org.Refused(path)
			if plays > 2 {
				t.Fatalf("origin sessions %d (want at most 2), refused %d", plays, refused)
			}
			t.Logf("%s: %d origin sessions with the filler killed mid-fill, %d refused", name, plays, refused)
		})
	}
}

// TestHerdPartition: a mesh cut in two halves that cannot reach each other
// (connections closed, reconnects refused) has one filler per half: two
// origin sessions for a live stream played on every node. Healed, the half
// whose filler is no longer the stream's designated filler hands its
// recording over to the designated one at a key frame and closes its origin
// session: one session within a bound, and every player goes on without a
// reconnect, an RTP sequence gap or a pause; a fresh stream takes one
// session.
func TestHerdPartition(t *testing.T) {
	t.Parallel()
	// Each session of the origin starts its RTP sequence numbers and
	// timestamps at random, as cameras do: the two halves' recordings then
	// number and time the stream differently, and a handover that did not
	// re-base one onto the other would show.
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"p00": origin.SampleClip(), "p01": origin.SampleClip()}
		c.RandomRTPBase = true
	})
	nodes, heal := partitioned(t, org)

	var convergedAt atomic.Int64
	results := make(chan error, len(nodes))
	var started sync.WaitGroup
	for _, n := range nodes {
		started.Add(1)
		var once sync.Once
		c := newContinuity()
		go func() {
			err := playUntilPacket(t.Context(), n.url("o/p00"), func(m *description.Media, p *rtp.Packet) bool {
				once.Do(started.Done)
				c.packet(m, p)
				at := convergedAt.Load()
				return at != 0 && time.Since(time.Unix(0, at)) > 2*time.Second
			})
			if err == nil {
				err = c.err(time.Second)
			}
			results <- err
		}()
	}
	started.Wait()
	if _, plays := org.Sessions("p00"); plays != 2 {
		t.Errorf("partitioned: %d origin sessions, want 2 (one per half)", plays)
	}

	healed := time.Now()
	heal()
	testkit.Eventually(t, 20*time.Second, "one origin session of the stream played across the partition", func() bool {
		_, open := org.Refused("p00")
		return open == 1
	})
	convergedAt.Store(time.Now().UnixNano())
	t.Logf("healed: one origin session again after %v", time.Since(healed).Round(10*time.Millisecond))
	for range nodes {
		select {
		case err := <-results:
			if err != nil {
				t.Errorf("player across the healing: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a player received nothing 2 s after the mesh converged")
		}
	}
	if _, open := org.Refused("p00"); open != 1 {
		t.Errorf("after converging: %d origin sessions open, want 1", open)
	}
	if _, plays := org.Sessions("p00"); plays != 2 {
		t.Errorf("after healing: %d sessions of the stream played across it in all, want 2 (none opened anew)", plays)
	}
	herdRound(t, nodes, "p01")
	if _, plays := org.Sessions("p01"); plays != 1 {
		t.Errorf("healed: a fresh stream took %d origin sessions, want 1", plays)
	}
}

// partitioned starts a herd mesh of org cut in two halves that cannot
// reach each other (connections closed, reconnects refused), each knowing
// its own members; heal joins them again and waits until every node knows
// every other.
func partitioned(t *testing.T, org *origin.Origin) (nodes []*testNode, heal func()) {
	t.Helper()
	nodes = herdMesh(t, org, herdNodes, nil)
	halves := [][]*testNode{nodes[:herdNodes/2], nodes[herdNodes/2:]}
	cut := func(blocked bool) {
		for _, a := range halves[0] {
			for _, b := range halves[1] {
				for _, pair := range [][2]*testNode{{a, b}, {b, a}} {
					if err := node.MeshOf(pair[0].Node).Block(pair[1].PeerID(), blocked); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	cut(true)
	for _, h := range halves {
		waitMembers(t, h, len(h))
	}
	return nodes, func() {
		cut(false)
		for _, a := range halves[0] {
			for _, b := range halves[1] {
				if err := node.MeshOf(a.Node).Connect(t.Context(), b.MeshAddrs()[0]); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitMembers(t, nodes, len(nodes))
	}
}

// TestHerdPartitionVOD: a VOD stream played on every node of a cut mesh
// takes one origin session per half; the fills running when the halves
// heal run to their end (no third session, nothing switched), players on
// every node play it again without a new session, and a fresh stream
// takes one.
func TestHerdPartitionVOD(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Media["q00"], c.Media["q01"] = origin.SampleClip(), origin.SampleClip()
		c.RandomRTPBase = true
	})
	nodes, heal := partitioned(t, org)
	herdRound(t, nodes, "q00")
	if _, plays := org.Sessions("q00"); plays != 2 {
		t.Errorf("partitioned: %d origin sessions, want 2 (one per half)", plays)
	}
	heal()
	herdRound(t, nodes, "q00")
	if _, plays := org.Sessions("q00"); plays != 2 {
		t.Errorf("healed while both halves fill it: %d origin sessions in all, want still 2", plays)
	}
	herdRound(t, nodes, "q01")
	if _, plays := org.Sessions("q01"); plays != 1 {
		t.Errorf("healed: a fresh stream took %d origin sessions, want 1", plays)
	}
}

// continuity follows one player's packets: each track's RTP sequence
// numbers must follow one another, its timestamps move by less than a
// second from one packet to the next, and the longest wait between two
// packets is kept.
type continuity struct {
	mu      sync.Mutex
	prev    map[*description.Media]*rtp.Header
	last    time.Time
	longest time.Duration
	gap     error
}

func newContinuity() *continuity { return &continuity{prev: make(map[*description.Media]*rtp.Header)} }

func (c *continuity) packet(m *description.Media, p *rtp.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !c.last.IsZero() {
		c.longest = max(c.longest, now.Sub(c.last))
	}
	c.last = now
	if prev, ok := c.prev[m]; ok && c.gap == nil {
		step := float64(int32(p.Timestamp-prev.Timestamp)) / float64(m.Formats[0].ClockRate())
		switch {
		case p.SequenceNumber != prev.SequenceNumber+1:
			c.gap = fmt.Errorf("%s RTP sequence number %d after %d", m.Type, p.SequenceNumber, prev.SequenceNumber)
		case step < -0.5 || step > 1:
			c.gap = fmt.Errorf("%s RTP timestamp moved %.3f s from one packet to the next", m.Type, step)
		}
	}
	h := p.Header
	c.prev[m] = &h
}

// err is the first sequence gap, or a wait between packets longer than
// pause.
func (c *continuity) err(pause time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gap != nil {
		return c.gap
	}
	if c.longest > pause {
		return fmt.Errorf("packets paused for %v (at most %v)", c.longest.Round(time.Millisecond), pause)
	}
	return nil
}
