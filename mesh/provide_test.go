package mesh

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/store"
)

func providerIDs(ps []Provider) []string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids
}

func TestKeyCID(t *testing.T) {
	key := "rtsp://origin.test:554/a.mp4"
	c := KeyCID(key)
	if c.Prefix().Codec != 0x55 { // raw
		t.Errorf("codec %x, want raw (0x55)", c.Prefix().Codec)
	}
	sum := sha256.Sum256([]byte(key))
	h := c.Hash()
	if got := h[len(h)-32:]; string(got) != string(sum[:]) {
		t.Errorf("multihash digest %x, want the key's sha256 %x", got, sum)
	}
	if store.StreamID(key) != c.Hash().HexString()[4:] {
		t.Errorf("CID digest %s does not match store.StreamID %s", c.Hash().HexString(), store.StreamID(key))
	}
}

func TestFindProvidersAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startMesh(t, 4, Config{FindTimeout: 2 * time.Second})
	key := testKey("find")
	ctx := t.Context()
	if err := nodes[1].Provide(ctx, key); err != nil {
		t.Fatalf("Provide: %v", err)
	}
	if err := nodes[2].Provide(ctx, key); err != nil {
		t.Fatalf("Provide: %v", err)
	}
	for i, nd := range nodes {
		ps, err := nd.FindProviders(ctx, key)
		if err != nil {
			t.Fatalf("node %d FindProviders: %v", i, err)
		}
		ids := providerIDs(ps)
		if slices.Contains(ids, nd.ID()) {
			t.Errorf("node %d found itself: %v", i, ids)
		}
		for _, want := range []*testNode{nodes[1], nodes[2]} {
			if want != nd && !slices.Contains(ids, want.ID()) {
				t.Errorf("node %d: providers %v lack %s", i, ids, want.ID())
			}
		}
		for j, p := range ps {
			if p.RTT <= 0 {
				t.Errorf("node %d: provider %s has no measured RTT", i, p.ID)
			}
			if j > 0 && p.RTT < ps[j-1].RTT {
				t.Errorf("node %d: providers not nearest first: %v", i, ps)
			}
		}
	}
	// An unknown key has no providers, quickly and without error.
	start := time.Now()
	ps, err := nodes[3].FindProviders(ctx, testKey("nobody"))
	if err != nil || len(ps) != 0 {
		t.Errorf("unknown key: %v, %v", ps, err)
	}
	if d := time.Since(start); d > 2*time.Second+500*time.Millisecond {
		t.Errorf("FindProviders took %v, bounded by FindTimeout 2s", d)
	}
}

func TestFindProvidersHonoursCallerContext(t *testing.T) {
	t.Parallel()
	nd := startNode(t, Config{}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := nd.FindProviders(ctx, testKey("x")); err == nil {
		t.Fatal("FindProviders with a cancelled context: no error")
	}
}

func TestFirstNodeProvidesAlone(t *testing.T) {
	t.Parallel()
	nd := startNode(t, Config{ReprovideInterval: time.Second, ProviderTTL: 3 * time.Second}, nil)
	key := testKey("alone")
	// No DHT peer: the announcement fails, the key stays in the re-provide set.
	_ = nd.Provide(t.Context(), key)
	nd.mu.Lock()
	_, ok := nd.provided[key]
	nd.mu.Unlock()
	if !ok {
		t.Fatal("key not kept for re-providing")
	}
	// A node that joins later receives the record once the re-provide loop
	// retried, and finds the first node.
	other := startNode(t, Config{Bootstrap: nd.Addrs(), ReprovideInterval: time.Second, ProviderTTL: 3 * time.Second}, nil)
	testkit.Eventually(t, 30*time.Second, "the record to reach the late node", func() bool {
		ps, err := other.dht.ProviderStore().GetProviders(t.Context(), KeyCID(key).Hash())
		return err == nil && len(ps) == 1 && ps[0].ID == nd.host.ID()
	})
	ps, err := other.FindProviders(t.Context(), key)
	if err != nil || !slices.Contains(providerIDs(ps), nd.ID()) {
		t.Fatalf("late node's FindProviders: %v, %v", ps, err)
	}
}

func TestForgetStopsReprovide(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	cfg := Config{ProviderTTL: ttl, ReprovideInterval: 400 * time.Millisecond, FindTimeout: time.Second}
	nodes := startMesh(t, 3, cfg)
	key := testKey("forget")
	if err := nodes[1].Provide(t.Context(), key); err != nil {
		t.Fatalf("Provide: %v", err)
	}
	found := func() bool {
		ps, err := nodes[2].FindProviders(t.Context(), key)
		if err != nil {
			t.Fatalf("FindProviders: %v", err)
		}
		return slices.Contains(providerIDs(ps), nodes[1].ID())
	}
	if !found() {
		t.Fatal("provider not found after Provide")
	}
	// Re-providing keeps the record alive past its lifetime.
	tick := time.NewTicker(200 * time.Millisecond) // samples a steady state
	defer tick.Stop()
	for until := time.Now().Add(2*ttl + ttl/2); time.Now().Before(until); <-tick.C {
		if !found() {
			t.Fatal("provider record lapsed although it is re-provided")
		}
	}
	nodes[1].Forget(key)
	forgot := time.Now()
	testkit.Eventually(t, 4*ttl, "the forgotten record to expire", func() bool { return !found() })
	if d := time.Since(forgot); d < ttl/2 {
		t.Errorf("record gone after %v: sooner than any lifetime %v allows", d, ttl)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no data dir", Config{}, "DataDir"},
		{"reprovide too slow", Config{DataDir: dir, ProviderTTL: time.Hour, ReprovideInterval: 30 * time.Minute}, "ReprovideInterval"},
		{"bad listen", Config{DataDir: dir, Listen: []string{"127.0.0.1:4001"}}, "Listen"},
		{"bootstrap without id", Config{DataDir: dir, Bootstrap: []string{"/ip4/127.0.0.1/tcp/4001"}}, "Bootstrap"},
		{"bad allow peer", Config{DataDir: dir, AllowPeers: []string{"alice"}}, "AllowPeers"},
		{"stall timeout below keep-alives", Config{DataDir: dir, StallTimeout: time.Second}, "StallTimeout"},
		{"missing psk file", Config{DataDir: dir, Listen: loopback, PSKFile: dir + "/none.key"}, "psk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.cfg, openStore(t))
			if err == nil {
				_ = m.Close()
				t.Fatalf("New accepted %+v", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestFindProvidersStaleProvider: a provider record whose peer never answers
// (its address accepts TCP and then says nothing) neither hides the live
// provider nor holds the lookup for the whole FindTimeout.
func TestFindProvidersStaleProvider(t *testing.T) {
	t.Parallel()
	const findTimeout = 4 * time.Second
	nodes := startMesh(t, 3, Config{FindTimeout: findTimeout})
	key := testKey("stale")
	if err := nodes[1].Provide(t.Context(), key); err != nil {
		t.Fatal(err)
	}

	// A silent listener and a made-up peer announced at it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		heldMu.Lock()
		defer heldMu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ghost, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		if err := nd.dht.ProviderStore().AddProvider(t.Context(), KeyCID(key).Hash(), peer.AddrInfo{ID: ghost, Addrs: []ma.Multiaddr{addr}}); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	ps, err := nodes[2].FindProviders(t.Context(), key)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 || ps[0].ID != nodes[1].ID() || ps[0].RTT <= 0 {
		t.Fatalf("providers %+v: want the live one first, measured", ps)
	}
	for _, p := range ps {
		if p.ID == ghost.String() && p.RTT != 0 {
			t.Errorf("the silent provider has an RTT %v", p.RTT)
		}
	}
	if took > findTimeout/2 {
		t.Errorf("FindProviders took %v with a silent provider; grace is %v", took, findTimeout/4)
	}
}

func TestBootstrapListNamingItself(t *testing.T) {
	t.Parallel()
	first := startNode(t, Config{}, nil)
	dir := t.TempDir()
	// Learn the second node's id, then start it with a list naming both.
	probe, err := New(Config{DataDir: dir, Listen: loopback}, openStore(t))
	if err != nil {
		t.Fatal(err)
	}
	self := probe.Addrs()[0]
	_ = probe.Close()
	second := startNode(t, Config{DataDir: dir, Bootstrap: append(first.Addrs(), self)}, nil)
	if len(second.boot) != len(first.Addrs()) {
		t.Errorf("bootstrap list keeps itself: %v", second.boot)
	}
	testkit.Eventually(t, 10*time.Second, "the second node to join the first", func() bool {
		return second.dht.RoutingTable().Find(first.host.ID()) != ""
	})
}
