package mesh

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/rtspmesh/rtspmesh/store"
)

// TestFillsAtOnceFromOnePeer: node B runs as many fills at once as its
// Config.MaxFills allows, every one from node A, and A serves them all at
// once: the resource manager refuses none of them. libp2p's default had
// refused 26 of 32 (16 MiB for the protocol with one peer, of which a
// reservation at high priority gets 80%: 2 deep and 4 shallow fills).
//
// A's recordings are still filling when B asks, so every fill holds its
// stream, its reservations and A's handler until A finishes them; each
// fill stops at its first stored segment until all have one (or failed),
// so all hold their reservations at the same moment.
func TestFillsAtOnceFromOnePeer(t *testing.T) {
	t.Parallel()
	const n = 32
	cfg := Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, MaxFills: n}
	a, b := startPair(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	keys := make([]string, n)
	writers := make([]*store.Writer, n)
	sources := make([]*packetSource, n)
	for i := range n {
		keys[i] = testKey("many")
		w, err := a.st.Create(testManifest(keys[i]))
		if err != nil {
			t.Fatal(err)
		}
		writers[i], sources[i] = w, &packetSource{size: 1200, rate: 250_000}
		record(t, w, sources[i], 2*time.Second) // a sealed segment, and an open one
	}

	reached := make(chan error, n) // nil: a fill stored its first segment
	release := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() {
			errs[i] = manyFill(ctx, a, b, key, reached, release)
		})
	}
	failed := 0
	var firstErr error
	for range n {
		select {
		case err := <-reached:
			if err != nil {
				failed++
				firstErr = cmp.Or(firstErr, err)
			}
		case <-ctx.Done():
			t.Fatalf("fills did not all start: %v", ctx.Err())
		}
	}
	serving := a.serving.Load()
	close(release)
	for i, w := range writers {
		record(t, w, sources[i], 3*time.Second)
		if err := w.Finish(store.StateComplete); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of %d fills from one peer failed before their first segment; the first: %v", failed, n, firstErr)
	}
	if serving != n {
		t.Errorf("A served %d fills at once, want %d", serving, n)
	}
	for i, key := range keys {
		if errs[i] != nil {
			t.Fatalf("fill %d: %v", i, errs[i])
		}
		sameSegments(t, a.st, b.st, key)
	}
}

// manyFill fills key from a into b, telling reached once it stored its
// first segment (nil) or failed before (the error), and waiting for
// release before it goes on.
func manyFill(ctx context.Context, a, b *testNode, key string, reached chan<- error, release <-chan struct{}) error {
	var once sync.Once
	tell := func(err error) { once.Do(func() { reached <- err }) }
	pf, err := b.OpenFill(ctx, providerOf(a), key, 0)
	if err != nil {
		tell(err)
		return err
	}
	defer pf.Close()
	w, err := b.st.Create(pf.Manifest())
	if err != nil {
		tell(err)
		return err
	}
	pf.onSegment = func(uint32) {
		tell(nil)
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	if err := pf.Run(ctx, w); err != nil {
		tell(err)
		_ = w.Finish(store.StatePartial)
		return fmt.Errorf("fill %s: %w", key, err)
	}
	tell(errors.New("ended without storing a segment"))
	return w.Finish(store.StateComplete)
}

// TestFillServingBoundedPerPeer: a peer may hold at most twice A's
// MaxFills fill streams at once (so a bounded share of A's memory,
// FillMemory); the next one is reset, not served.
func TestFillServingBoundedPerPeer(t *testing.T) {
	t.Parallel()
	const maxFills = 3
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	a := startNode(t, Config{Listen: tcp, MaxFills: maxFills}, nil)
	b := startNode(t, Config{Listen: tcp}, nil)
	key := testKey("bounded")
	w, err := a.st.Create(testManifest(key))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Finish(store.StatePartial) }()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := connect(ctx, b, a); err != nil {
		t.Fatal(err)
	}
	// Each stream gets its answer and is then held: the recording is
	// still filling and has no segment yet.
	ask := func() error {
		s, err := b.host.NewStream(ctx, a.host.ID(), FillProtocol)
		if err != nil {
			return err
		}
		t.Cleanup(func() { _ = s.Reset() })
		_ = s.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := s.Write(appendRequest(nil, fillRequest{Key: key})); err != nil {
			return err
		}
		_, err = readAnswer(bufio.NewReader(s))
		return err
	}
	for i := range fillStreams(maxFills) {
		if err := ask(); err != nil {
			t.Fatalf("fill stream %d of %d: %v", i+1, fillStreams(maxFills), err)
		}
	}
	err = ask()
	if !errors.Is(err, network.ErrReset) {
		t.Fatalf("fill stream %d: %v, want a reset", fillStreams(maxFills)+1, err)
	}
}
