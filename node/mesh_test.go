package node_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// meshNode starts a node that bootstraps from the given nodes.
func meshNode(t *testing.T, org *origin.Origin, mod func(*node.Config), bootstrap ...*testNode) *testNode {
	t.Helper()
	cfg := nodeConfig(t, org)
	for _, b := range bootstrap {
		cfg.Mesh.Bootstrap = append(cfg.Mesh.Bootstrap, b.MeshAddrs()...)
	}
	if mod != nil {
		mod(&cfg)
	}
	n := startNode(t, cfg)
	if len(bootstrap) > 0 && cfg.Mesh.PSKFile == "" && len(cfg.Mesh.AllowPeers) == 0 {
		// A player that arrives before the node has joined the mesh is
		// rightly served by the origin; the tests ask about a joined node.
		testkit.Eventually(t, 10*time.Second, "joined the mesh", func() bool { return len(n.Peers()) > 0 })
	}
	return n
}

func waitComplete(t *testing.T, n *testNode) store.Info {
	t.Helper()
	return waitCompleteAt(t, n, samplePath)
}

// TestMissFilledFromNeighbour: a player on A fills A from the origin; a
// player on B is then served from A's recording, frames identical, and the
// origin still served one fill.
func TestMissFilledFromNeighbour(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	a := meshNode(t, org, nil)
	b := meshNode(t, org, nil, a)
	c := meshNode(t, org, nil, a)
	abc := fillerFirst(t, org, samplePath, a, b, c) // A: the stream's filler
	a, b, c = abc[0], abc[1], abc[2]

	_, direct := honestRecording(t, org, a)

	var wg sync.WaitGroup
	var viaB, viaC []string
	wg.Go(func() { viaB = frameMD5(t, b.url(samplePath), "tcp") })
	wg.Go(func() { viaC = frameMD5(t, c.url(samplePath), "udp") })
	wg.Wait()
	sameFrames(t, "B (from A)", viaB, direct)
	sameFrames(t, "C (from A or B)", viaC, direct)
	for _, n := range []*testNode{b, c} {
		in := waitComplete(t, n)
		if in.Source == "origin" || in.Source == "" {
			t.Fatalf("node %s filled from %q, want a peer", n.PeerID(), in.Source)
		}
	}
	if _, plays := org.Sessions("sample.ts"); plays != 2 {
		t.Fatalf("origin plays: %d, want 2 (direct + A's fill)", plays)
	}
}

// TestColdStreamAcrossNodes: players on three nodes asking for a cold
// stream 100 ms apart make one origin session: B and C tail A's fill.
func TestColdStreamAcrossNodes(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	a := meshNode(t, org, nil)
	b := meshNode(t, org, nil, a)
	c := meshNode(t, org, nil, a, b)
	// The three agree on the stream's filler once each knows the other two
	// (in one run of make test two of them, their views of the mesh not
	// yet alike, each took itself for the filler and went to the origin:
	// the coalescing of a formed mesh is under test, not how fast a node
	// learns it).
	waitMembers(t, []*testNode{a, b, c}, 3)

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, n := range []*testNode{a, b, c} {
		if i > 0 {
			time.Sleep(100 * time.Millisecond) // the spacing under test, not a wait for an event
		}
		wg.Go(func() { errs[i] = firstPacket(t.Context(), n.url(samplePath)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("player %d: %v", i, err)
		}
	}
	if _, plays := org.Sessions("sample.ts"); plays != 1 {
		t.Fatalf("origin sessions: %d, want 1", plays)
	}
}

// TestProviderDiesMidFill: B fills from A; A is stopped part-way; B finishes
// from the origin and its player decodes every frame.
func TestProviderDiesMidFill(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	a := meshNode(t, org, nil)
	b := meshNode(t, org, nil, a)
	// A, which pulls from the origin, is the stream's designated filler.
	nodes := fillerFirst(t, org, samplePath, a, b)
	a, b = nodes[0], nodes[1]

	var direct []string
	var wg sync.WaitGroup
	wg.Go(func() { direct = frameMD5(t, "rtsp://"+org.Addr()+"/sample.ts", "tcp") })

	if err := firstPacket(t.Context(), a.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	key := storeKey(t, org)
	testkit.Eventually(t, 20*time.Second, "A has sealed segments", func() bool {
		m, err := a.Store().Manifest(key)
		return err == nil && len(m.Segments) >= 3
	})
	var viaB []string
	wg.Go(func() { viaB = frameMD5(t, b.url(samplePath), "tcp") })
	testkit.Eventually(t, 20*time.Second, "B fills from A", func() bool {
		m, err := b.Store().Manifest(key)
		return err == nil && m.Source == a.PeerID() && len(m.Segments) >= 2
	})
	a.stop()
	wg.Wait()
	sameFrames(t, "B after A died", viaB, direct)
	in := waitComplete(t, b)
	if in.Source != "origin" {
		t.Fatalf("B's recording source %q, want origin (it resumed there)", in.Source)
	}
}

// TestPrivateMeshKeys: nodes with different pre-shared keys never connect,
// so B fills from the origin.
func TestPrivateMeshKeys(t *testing.T) {
	t.Parallel()
	keyFile := func(name string) string {
		p := filepath.Join(t.TempDir(), name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := mesh.GenerateKey(f); err != nil {
			t.Fatal(err)
		}
		return p
	}
	org := startOrigin(t, nil)
	a := meshNode(t, org, func(c *node.Config) { c.Mesh.PSKFile = keyFile("a.key") })
	b := meshNode(t, org, func(c *node.Config) { c.Mesh.PSKFile = keyFile("b.key") }, a)
	expectOriginFill(t, org, a, b)
}

// TestAllowListRefusesPeer: B admits only a third node, so it never fills from A.
func TestAllowListRefusesPeer(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	a := meshNode(t, org, nil)
	other := meshNode(t, org, nil)
	b := meshNode(t, org, func(c *node.Config) { c.Mesh.AllowPeers = []string{other.PeerID()} }, a)
	expectOriginFill(t, org, a, b)
}

// expectOriginFill plays on a, then on b, and checks that b went to the
// origin rather than to a.
func expectOriginFill(t *testing.T, org *origin.Origin, a, b *testNode) {
	t.Helper()
	if err := firstPacket(t.Context(), a.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "A has a sealed segment", func() bool {
		m, err := a.Store().Manifest(storeKey(t, org))
		return err == nil && len(m.Segments) > 0
	})
	if err := firstPacket(t.Context(), b.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	if _, plays := org.Sessions("sample.ts"); plays != 2 {
		t.Fatalf("origin plays %d, want 2 (A and B each from the origin)", plays)
	}
	in, err := b.Stream(samplePath)
	if err != nil || in.Source != "origin" {
		t.Fatalf("B's source %q (%v), want origin", in.Source, err)
	}
}

// TestRestartKeepsIdentityAndRecordings: a node restarted on the same
// data_dir keeps its peer id and its recordings and provides them again.
func TestRestartKeepsIdentityAndRecordings(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	cfg := nodeConfig(t, org)
	a := startNode(t, cfg)
	id := a.PeerID()
	if err := firstPacket(t.Context(), a.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	waitComplete(t, a)
	a.stop()

	a2 := startNode(t, cfg)
	if a2.PeerID() != id {
		t.Fatalf("peer id after restart %s, want %s", a2.PeerID(), id)
	}
	if in, err := a2.Stream(samplePath); err != nil || in.State != store.StateComplete {
		t.Fatalf("recording after restart: %+v, %v", in, err)
	}
	b := meshNode(t, org, nil, a2)
	if err := firstPacket(t.Context(), b.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	in := waitComplete(t, b)
	if in.Source != id {
		t.Fatalf("B filled from %q, want the restarted A %s", in.Source, id)
	}
	if _, plays := org.Sessions("sample.ts"); plays != 1 {
		t.Fatalf("origin plays %d, want 1", plays)
	}
}
