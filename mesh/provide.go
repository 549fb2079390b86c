package mesh

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

// Announcing keys.
const (
	// provideTimeout bounds one announcement of one key.
	provideTimeout = time.Minute
	// provideRetry is how soon a key whose announcement failed (no DHT peer
	// yet, for a first node) is tried again, at most.
	provideRetry = 10 * time.Second
	// provideParallel bounds the announcements in flight in the re-provide loop.
	provideParallel = 8
	// maxProviders is how many providers FindProviders collects and measures.
	maxProviders = 8
)

// provided is the re-provide state of one key.
type provided struct {
	c   cid.Cid
	due time.Time // next announcement
}

// KeyCID is the DHT key of a stream key: the SHA-256 of the canonical URL
// (the bytes of store.StreamID) as a CIDv1 with the raw codec.
func KeyCID(key string) cid.Cid {
	sum := sha256.Sum256([]byte(key))
	h, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil { // only for an unknown code or a wrong length: a bug
		panic(fmt.Sprintf("mesh: multihash: %v", err))
	}
	return cid.NewCidV1(cid.Raw, h)
}

// Provide announces in the DHT that this node holds key, now, and keeps
// announcing it every ReprovideInterval until Forget. The key stays in the
// re-provide set when this announcement fails (for instance while the node has
// no DHT peer yet); it is then retried within seconds.
func (m *Mesh) Provide(ctx context.Context, key string) error {
	c := KeyCID(key)
	m.mu.Lock()
	p, ok := m.provided[key]
	if !ok {
		p = &provided{c: c}
		m.provided[key] = p
	}
	p.due = time.Now().Add(m.cfg.ReprovideInterval)
	m.mu.Unlock()

	if err := m.announce(ctx, c); err != nil {
		m.mu.Lock()
		if p == m.provided[key] {
			p.due = time.Now().Add(min(provideRetry, m.cfg.ReprovideInterval))
		}
		m.mu.Unlock()
		m.poke()
		return fmt.Errorf("provide %s: %w", c, err)
	}
	return nil
}

// Forget stops re-providing key (the store evicted it). Kademlia cannot
// withdraw a record: the ones already out expire after ProviderTTL, and a
// fetcher that meets this node as a stale provider moves on.
func (m *Mesh) Forget(key string) {
	m.mu.Lock()
	delete(m.provided, key)
	m.mu.Unlock()
}

// poke wakes the re-provide loop to plan again.
func (m *Mesh) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Mesh) announce(ctx context.Context, c cid.Cid) error {
	ctx, cancel := context.WithTimeout(ctx, provideTimeout)
	defer cancel()
	stop := context.AfterFunc(m.closing, cancel)
	defer stop()
	return m.dht.Provide(ctx, c, true)
}

// reprovideLoop announces every provided key when it is due.
func (m *Mesh) reprovideLoop(ctx context.Context) {
	t := time.NewTimer(m.cfg.ReprovideInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.wake:
		}
		next := m.reprovideDue(ctx)
		t.Reset(time.Until(next))
	}
}

// reprovideDue announces the keys that are due and returns when the next
// one will be.
func (m *Mesh) reprovideDue(ctx context.Context) time.Time {
	now := time.Now()
	var due []string
	m.mu.Lock()
	for k, p := range m.provided {
		if !p.due.After(now) {
			due = append(due, k)
		}
	}
	m.mu.Unlock()

	sem := make(chan struct{}, provideParallel)
	var wg sync.WaitGroup
	for _, k := range due {
		m.mu.Lock()
		p, ok := m.provided[k]
		m.mu.Unlock()
		if !ok {
			continue // forgotten meanwhile
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := m.announce(ctx, p.c)
			next := time.Now().Add(m.cfg.ReprovideInterval)
			if err != nil {
				next = time.Now().Add(min(provideRetry, m.cfg.ReprovideInterval))
				m.log.Debug("re-provide failed; retrying", "stream", k, "err", err)
			}
			m.mu.Lock()
			p.due = next
			m.mu.Unlock()
		})
	}
	wg.Wait()

	next := time.Now().Add(m.cfg.ReprovideInterval)
	m.mu.Lock()
	for _, p := range m.provided {
		if p.due.Before(next) {
			next = p.due
		}
	}
	m.mu.Unlock()
	return next
}

// Provider is a node that announced a key.
type Provider struct {
	ID    string   // peer id
	Addrs []string // multiaddrs it was announced with (may be empty)
	// RTT is the measured round-trip time; 0 when it could not be measured
	// within FindTimeout (such providers come last: probably stale).
	RTT time.Duration
}

// FindProviders looks key up in the DHT and returns its providers, nearest
// first by measured round-trip time, never this node. It takes at most
// FindTimeout (lookup and measurement together). Once a provider is found it
// waits at most FindTimeout/4 for more providers and for slow measurements,
// as long as one provider was measured by then; unmeasured providers (RTT 0,
// probably stale) come last. Finding none is not an error.
func (m *Mesh) FindProviders(parent context.Context, key string) ([]Provider, error) {
	ctx, cancel := context.WithTimeout(parent, m.cfg.FindTimeout)
	defer cancel()
	stop := context.AfterFunc(m.closing, cancel)
	defer stop()

	var (
		mu       sync.Mutex // guards provs[i].RTT against the pings
		provs    []Provider
		pings    sync.WaitGroup
		measured = make(chan bool, maxProviders) // one per ping: did it measure
		grace    <-chan time.Time                // runs from the first provider found
		graced   bool                            // grace ran out
	)
	m.awaitRoutingTable(ctx)
	pingCtx, endPings := context.WithCancel(ctx)
	lookup, endLookup := context.WithCancel(ctx)
	defer endLookup()
	found := m.dht.FindProvidersAsync(lookup, KeyCID(key), maxProviders+1)
	for found != nil {
		var ai peer.AddrInfo
		var ok bool
		select {
		case ai, ok = <-found:
			if !ok {
				found = nil
				continue
			}
		case <-grace:
			endLookup() // enough waiting for more; found drains and closes
			grace, graced = nil, true
			continue
		}
		if ai.ID == m.host.ID() || len(provs) >= maxProviders || m.liars.skip(ai.ID, key) {
			continue
		}
		if len(provs) == 0 {
			grace = time.After(m.cfg.FindTimeout / 4)
		}
		i := len(provs)
		mu.Lock()
		provs = append(provs, Provider{ID: ai.ID.String(), Addrs: addrStrings(ai.Addrs)})
		mu.Unlock()
		pings.Go(func() {
			rtt := m.rtt(pingCtx, ai)
			mu.Lock()
			provs[i].RTT = rtt
			mu.Unlock()
			measured <- rtt > 0
		})
	}
	// Wait for the measurements: all of them, or those that came in before
	// the grace ran out if one did.
	ok := 0
	for pending := len(provs); pending > 0 && !(graced && ok > 0) && ctx.Err() == nil; {
		select {
		case got := <-measured:
			pending--
			if got {
				ok++
			}
		case <-grace:
			grace, graced = nil, true
		case <-ctx.Done():
		}
	}
	endPings()
	pings.Wait()
	if err := parent.Err(); err != nil {
		return nil, fmt.Errorf("find providers: %w", err)
	}
	if m.closing.Err() != nil {
		return nil, fmt.Errorf("find providers: %w", ErrClosed)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.SortStableFunc(provs, func(a, b Provider) int {
		switch {
		case a.RTT == b.RTT:
			return 0
		case a.RTT == 0:
			return 1
		case b.RTT == 0:
			return -1
		case a.RTT < b.RTT:
			return -1
		}
		return 1
	})
	return provs, nil
}

// rtt measures the round-trip time to p: the peerstore's moving average when
// a connection is open, else one libp2p ping (which also opens the
// connection a fill will use). 0 when it failed within ctx.
func (m *Mesh) rtt(ctx context.Context, ai peer.AddrInfo) time.Duration {
	if len(m.host.Network().ConnsToPeer(ai.ID)) > 0 {
		if l := m.host.Peerstore().LatencyEWMA(ai.ID); l > 0 {
			return l
		}
	} else if len(ai.Addrs) > 0 {
		m.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Minute)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case r := <-ping.Ping(pctx, m.host, ai.ID):
		if r.Error != nil {
			return 0
		}
		return max(r.RTT, time.Nanosecond)
	case <-ctx.Done():
		return 0
	}
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// awaitRoutingTable holds a lookup, within ctx, while the node is connected
// to peers but its routing table has not taken any of them in yet (a node
// that just joined: identify is still running). A lookup then would end at
// once with nothing and send the player to the origin. A node with no
// connection at all does not wait.
func (m *Mesh) awaitRoutingTable(ctx context.Context) {
	if m.dht.RoutingTable().Size() > 0 || len(m.host.Network().Peers()) == 0 {
		return
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for m.dht.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
