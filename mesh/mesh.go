package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rtspmesh/rtspmesh/store"
)

// DHTPrefix is the protocol prefix of the mesh's private Kademlia DHT
// (/rtspmesh/kad/1.0.0): rtspmesh nodes never join the public IPFS DHT.
const DHTPrefix = "/rtspmesh"

// mdnsService is the DNS-SD service name under which nodes find each other
// on the local network.
const mdnsService = "_rtspmesh._udp"

// bootstrapRetry is how often Run dials the bootstrap peers again while it is
// connected to none of them.
const bootstrapRetry = 30 * time.Second

// Mesh is one node's membership in the mesh: its libp2p host, its DHT and the
// fill protocol server over its store.
type Mesh struct {
	cfg  Config
	log  *slog.Logger
	st   *store.Store
	host host.Host
	dht  *dht.IpfsDHT
	boot []peer.AddrInfo

	// closing ends with Close; fill handlers and provides run under it.
	closing   context.Context
	cancel    context.CancelFunc
	handlers  sync.WaitGroup // fill handlers in flight
	serving   atomic.Int64   // fills being served
	bytesIn   atomic.Uint64  // segment bytes received and stored
	bytesOut  atomic.Uint64  // segment bytes sent
	closeOnce sync.Once
	closeErr  error

	found chan peer.AddrInfo // mDNS discoveries, drained by Run

	signer      *signer       // signs what this node pulls from origins
	trust       *trust        // whose signatures it accepts
	liars       *distrust     // providers that lied, skipped for a while
	checkpoints checkpointLog // live checkpoints received, passed on by the live tails

	catalogueSlots chan struct{} // catalogue answers being written
	gate           *gate         // the host's connection gater (Block)
	holds          atomic.Int64  // filler requests being held (handleFiller)
	deep           atomic.Int64  // fills that asked for the deep pipeline (PeerFill.Run)

	mu       sync.Mutex
	provided map[string]*provided // keys being re-provided, by stream key
	wake     chan struct{}        // a key is due soon: the re-provide loop re-plans
}

// New validates cfg, starts the libp2p host and the DHT, and serves the fill
// protocol over st. Run joins the mesh; Close (or the end of Run) stops it.
func New(cfg Config, st *store.Store) (*Mesh, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("mesh: nil store")
	}
	log := cfg.Logger.With("component", "mesh")
	key, err := loadIdentity(cfg.DataDir, log)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	sg, err := newSigner(key)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.DisableMetrics(),
		libp2p.Ping(true),
	}
	listen := cfg.Listen
	if cfg.PSKFile != "" {
		psk, err := loadPSK(cfg.PSKFile)
		if err != nil {
			return nil, fmt.Errorf("mesh: %w", err)
		}
		var dropped []string
		listen, dropped = PrivateListen(listen)
		if len(dropped) > 0 {
			log.Warn("private mesh (psk_file) is TCP-only: not listening on non-TCP addresses", "dropped", dropped)
		}
		if len(listen) == 0 {
			return nil, errors.New("mesh: a private mesh (PSKFile) needs at least one /tcp Listen address")
		}
		opts = append(opts, libp2p.PrivateNetwork(psk), libp2p.Transport(tcp.NewTCPTransport))
	} else {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport), libp2p.Transport(quic.NewTransport))
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	g := &gate{blocked: make(map[peer.ID]bool)}
	if len(cfg.AllowPeers) > 0 {
		if g.allow, err = newAllowGater(cfg.AllowPeers); err != nil {
			return nil, fmt.Errorf("mesh: %w", err)
		}
	}
	opts = append(opts, libp2p.ConnectionGater(g))
	var boot []peer.AddrInfo
	for _, s := range cfg.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("mesh: bootstrap %q: %w", s, err)
		}
		if ai.ID != "" {
			boot = append(boot, *ai)
		}
	}

	// Last before the host, which closes it: it runs a goroutine.
	rm, err := resourceManager(cfg.MaxFills)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	h, err := libp2p.New(append(opts, libp2p.ResourceManager(rm))...)
	if err != nil {
		_ = rm.Close() // closing twice is harmless
		return nil, fmt.Errorf("mesh: libp2p host: %w", err)
	}
	// One bootstrap list may serve every node, this one included.
	boot = slices.DeleteFunc(boot, func(ai peer.AddrInfo) bool { return ai.ID == h.ID() })
	d, err := dht.New(h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTPrefix),
		dht.DisableValues(),
		dht.BootstrapPeers(boot...),
		dht.ProviderManagerOpts(
			records.ProvideValidity(cfg.ProviderTTL),
			records.ProviderAddrTTL(cfg.ProviderTTL),
			records.CleanupInterval(min(cfg.ProviderTTL, time.Hour)),
		),
	)
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("mesh: dht: %w", err)
	}
	tr, err := newTrust(cfg, h.ID())
	if err != nil {
		_ = d.Close()
		_ = h.Close()
		return nil, fmt.Errorf("mesh: %w", err)
	}
	log.Info("mesh trust", "accept_content_signed_by", tr.why)
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mesh{
		signer:  sg,
		trust:   tr,
		liars:   newDistrust(cfg.DistrustFor),
		cfg:     cfg,
		log:     log.With("peer", h.ID().String()),
		st:      st,
		host:    h,
		dht:     d,
		boot:    boot,
		closing: ctx,
		cancel:  cancel,
		found:   make(chan peer.AddrInfo, 16),

		catalogueSlots: make(chan struct{}, catalogueServing),
		gate:           g,
		provided:       make(map[string]*provided),
		wake:           make(chan struct{}, 1),
	}
	st.SetSealer(sg) // what this node stores from an origin, it signs
	h.SetStreamHandler(FillProtocol, m.handleFill)
	h.SetStreamHandler(CatalogueProtocol, m.handleCatalogue)
	if !cfg.NotFiller {
		h.SetStreamHandler(FillerProtocol, m.handleFiller)
	}
	return m, nil
}

// PrivateListen splits listen addresses into those a private mesh (a
// PSKFile) listens on and the others it drops: a libp2p private network is
// TCP-only (it refuses QUIC, WebRTC, WebTransport and WebSocket). This is
// the one statement of that rule; config validation asks it too.
func PrivateListen(addrs []string) (keep, dropped []string) {
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			dropped = append(dropped, s)
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil && !hasProto(a, ma.P_WS) {
			keep = append(keep, s)
		} else {
			dropped = append(dropped, s)
		}
	}
	return keep, dropped
}

func hasProto(a ma.Multiaddr, code int) bool {
	_, err := a.ValueForProtocol(code)
	return err == nil
}

// ID is this node's peer id.
func (m *Mesh) ID() string { return m.host.ID().String() }

// Addrs is this node's listen addresses as full multiaddrs ending in
// /p2p/<id>, the form other nodes take as Bootstrap.
func (m *Mesh) Addrs() []string {
	p2p, err := ma.NewComponent("p2p", m.host.ID().String())
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range m.host.Addrs() {
		out = append(out, a.Encapsulate(p2p.Multiaddr()).String())
	}
	slices.Sort(out)
	return out
}

// Run joins the mesh (bootstrap peers, mDNS) and keeps the provided keys
// announced until ctx ends; then it closes the mesh and returns nil once
// everything it started has stopped.
func (m *Mesh) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	context.AfterFunc(m.closing, cancel) // Close also ends Run

	var md interface{ Close() error }
	if m.cfg.MDNS {
		s := mdns.NewMdnsService(m.host, mdnsService, mdnsNotifee(m.found))
		if err := s.Start(); err != nil {
			m.log.Warn("mDNS discovery unavailable", "err", err)
		} else {
			md = s
		}
	}
	m.log.Info("mesh up", "addrs", m.Addrs(), "bootstrap", len(m.boot), "mdns", md != nil,
		"private", m.cfg.PSKFile != "", "allow_peers", len(m.cfg.AllowPeers))

	var wg sync.WaitGroup
	wg.Go(func() { m.bootstrapLoop(ctx) })
	wg.Go(func() { m.reprovideLoop(ctx) })
	wg.Go(func() { m.connectFound(ctx) })
	wg.Wait()

	if md != nil {
		_ = md.Close()
	}
	if err := m.Close(); err != nil {
		return err
	}
	return nil
}

// Close stops the fill server, the DHT and the host. It waits for fills being
// served to end (their streams are reset). It is idempotent; Run calls it.
func (m *Mesh) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock() // orders the cancel with handleFill's check before handlers.Add
		m.cancel()
		m.mu.Unlock()
		m.host.RemoveStreamHandler(FillProtocol)
		m.host.RemoveStreamHandler(CatalogueProtocol)
		m.host.RemoveStreamHandler(FillerProtocol)
		errD := m.dht.Close()
		errH := m.host.Close()
		m.handlers.Wait()
		if err := errors.Join(errD, errH); err != nil {
			m.closeErr = fmt.Errorf("mesh close: %w", err)
		}
	})
	return m.closeErr
}

// bootstrapLoop connects to the bootstrap peers, then again every
// bootstrapRetry while none of them is connected.
func (m *Mesh) bootstrapLoop(ctx context.Context) {
	if len(m.boot) == 0 {
		return
	}
	t := time.NewTicker(bootstrapRetry)
	defer t.Stop()
	for {
		if !m.connectedToAny(m.boot) {
			n := m.connectAll(ctx, m.boot)
			if n == 0 {
				m.log.Warn("no bootstrap peer reachable; retrying", "bootstrap", len(m.boot), "every", bootstrapRetry)
			} else if err := m.dht.Bootstrap(ctx); err != nil {
				m.log.Debug("dht bootstrap", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Mesh) connectedToAny(ps []peer.AddrInfo) bool {
	for _, p := range ps {
		if len(m.host.Network().ConnsToPeer(p.ID)) > 0 {
			return true
		}
	}
	return false
}

// connectAll dials ps in parallel and returns how many connected.
func (m *Mesh) connectAll(ctx context.Context, ps []peer.AddrInfo) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		n  int
	)
	for _, p := range ps {
		if p.ID == m.host.ID() {
			continue
		}
		wg.Go(func() {
			if err := m.host.Connect(ctx, p); err != nil {
				m.log.Debug("connect failed", "to", p.ID.String(), "err", err)
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		})
	}
	wg.Wait()
	return n
}

// mdnsNotifee hands mDNS discoveries to Run without blocking mDNS.
type mdnsNotifee chan peer.AddrInfo

func (n mdnsNotifee) HandlePeerFound(p peer.AddrInfo) {
	select {
	case n <- p:
	default: // Run is busy or gone; mDNS announces again
	}
}

// connectFound connects to the neighbours mDNS found.
func (m *Mesh) connectFound(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-m.found:
			if len(m.host.Network().ConnsToPeer(p.ID)) > 0 {
				continue
			}
			if m.connectAll(ctx, []peer.AddrInfo{p}) > 0 {
				m.log.Info("mDNS neighbour connected", "neighbour", p.ID.String())
			}
		}
	}
}
