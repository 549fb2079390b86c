package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/node/fill"
	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/store"
)

// Node is one rtspmesh node: a store, the RTSP server players connect to,
// and (unless disabled) a mesh peer.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store // recordings, on disk under data_dir
	relay *store.Store // uncacheable streams on their way to players, in memory
	mesh  *mesh.Mesh   // nil when mesh.enabled is false
	edge  *rtspedge.Server

	// Operations (admin.go, metrics.go): the admin HTTP API and Prometheus collectors.
	admin   *adminServer
	metrics *metrics

	fills   *fill.Fills             // the fills in progress
	rates   *requestRates           // fills.describes_per_* (bounds.go)
	budgets map[string]*fill.Budget // origins' max_sessions, by origin name
	// throttles are the fills' bandwidth caps (throttle.go).
	throttles *throttles
	// fillersCtx ends when Run stops: a fill a neighbour asks for
	// (fillFor) waits no longer (the mesh outlives the fills, filler.go).
	fillersCtx  context.Context
	stopFillers context.CancelFunc
	wg          sync.WaitGroup // every goroutine Run owns
	ready       chan struct{}
}

// New validates cfg and opens the node's store, RTSP listener and mesh host.
// Run starts serving; nothing runs before it.
func New(cfg Config, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	open, err := cfg.Mesh.Posture()
	if err != nil {
		return nil, err
	}
	if open {
		logger.Warn("OPEN MESH: mesh.open is true and the mesh listens beyond this host with no psk_file and no allow_peers; anyone who reaches mesh.listen may join and copy recordings (see docs/operations.md, \"Trust\")",
			"listen", cfg.Mesh.Listen)
	}
	n := &Node{
		cfg:   cfg,
		log:   logger.With("component", "node"),
		rates: newRequestRates(cfg.Fills),
		ready: make(chan struct{}),

		budgets:   newBudgets(cfg.Origins),
		throttles: newThrottles(cfg),
	}
	n.fillersCtx, n.stopFillers = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.close()
		}
	}()

	n.store, err = store.Open(filepath.Join(cfg.DataDir, "store"), store.Options{
		MaxBytes:   int64(cfg.Cache.MaxBytes),
		MinFree:    int64(cfg.Cache.MinFree),
		LiveWindow: time.Duration(cfg.Cache.LiveWindow),
		CacheBytes: cfg.Cache.segmentCache(1),
		OnEvict:    n.evicted,
		Logger:     logger.With("component", "store"),
	})
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", cfg.DataDir, err)
	}
	n.relay, err = store.Open("", store.Options{
		InMemory:   true,
		LiveWindow: time.Duration(cfg.Cache.LiveWindow),
		CacheBytes: cfg.Cache.segmentCache(4),
		Logger:     logger.With("component", "relay"),
	})
	if err != nil {
		return nil, fmt.Errorf("open relay store: %w", err)
	}
	if cfg.Mesh.Enabled {
		n.mesh, err = mesh.New(mesh.Config{
			DataDir:     cfg.DataDir,
			Listen:      cfg.Mesh.Listen,
			Bootstrap:   cfg.Mesh.Bootstrap,
			MDNS:        cfg.Mesh.MDNS,
			PSKFile:     cfg.Mesh.PSKFile,
			AllowPeers:  cfg.Mesh.AllowPeers,
			ProviderTTL: time.Duration(cfg.Mesh.ProviderTTL),
			FindTimeout: time.Duration(cfg.Mesh.FindTimeout),
			MaxFills:    cfg.Fills.MaxConcurrent,

			TrustedSigners: cfg.Mesh.TrustedSigners,
			AnswerTimeout:  time.Duration(cfg.Mesh.AnswerTimeout),
			DistrustFor:    time.Duration(cfg.Mesh.DistrustFor),
			TrustedOnly:    n.peersTrustedOnly,
			ServingLive:    func(key string) func() { return n.fills.JoinLive(key) },
			Configured:     n.configured,
			StartFill:      n.fillFor,
			WrapFill:       n.throttles.peer,
			Logger:         logger.With("component", "mesh"),
		}, n.store)
		if err != nil {
			return nil, fmt.Errorf("start mesh host: %w", err)
		}
	}
	n.fills = fill.New(fill.Config{
		Store:             n.store,
		Relay:             n.relay,
		Mesh:              n.mesh,
		OriginTimeout:     time.Duration(cfg.OriginTimeout),
		LiveReconnect:     time.Duration(cfg.Cache.LiveReconnect),
		LiveLinger:        time.Duration(cfg.Cache.LiveLinger),
		LiveMaxHops:       cfg.Mesh.LiveMaxHops,
		MaxFills:          cfg.Fills.MaxConcurrent,
		MaxFillsPerClient: cfg.Fills.MaxPerClient,
		FillerReach:       time.Duration(cfg.Mesh.FillerReach),
		Budget:            n.budget,
		Logger:            n.log,
		Hooks: fill.Hooks{
			Created: n.provide,
			LookedUp: func(key string, providers []string, took time.Duration, err error) {
				n.metrics.dhtLookup(took, len(providers), err)
				n.admin.lookedUp(key, providers)
			},
			FromFiller: func(key, filler string) { n.admin.lookedUp(key, []string{filler}) },
			Filled:     func(source string, bytes uint64) { n.metrics.filled(source, bytes) },
			Ended:      func(result string, took time.Duration) { n.metrics.fillEnded(result, took) },
		},
	})
	n.edge, err = rtspedge.NewServer(rtspedge.ServerConfig{
		Listen:         cfg.RTSP.Listen,
		UDPRTPAddress:  cfg.RTSP.UDPRTPListen,
		UDPRTCPAddress: cfg.RTSP.UDPRTCPListen,
		Transports:     cfg.RTSP.Transports,
		Recordings:     n,
		Logger:         logger.With("component", "rtsp"),
		Limits:         cfg.RTSP.limits(),
		Auth:           cfg.playerAuth(),
	})
	if err != nil {
		return nil, err // rtspedge says "rtsp server: …" itself
	}
	if n.admin, err = newAdminServer(n, logger); err != nil { // also sets n.metrics
		return nil, err
	}
	ok = true
	return n, nil
}

// close releases what New opened; Run calls it when it returns.
func (n *Node) close() {
	if n.mesh != nil {
		n.mesh.Close()
	}
	if n.relay != nil {
		_ = n.relay.Close()
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			n.log.Error("close store", "err", err)
		}
	}
}

// Run serves players and peers until ctx ends or a component fails, then
// stops every fill and goroutine it started and closes the store.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4) // one per component below
	// Each component names itself in its errors ("rtsp server: …").
	n.wg.Go(func() { errc <- stopped(n.edge.Run(ctx)) })
	n.wg.Go(func() { errc <- stopped(n.admin.run(ctx)) })
	// The mesh leaves after the fills have stopped: a stopping node closes
	// its origin sessions before its neighbours see it go and one of them
	// takes over as a stream's filler (origins[].max_sessions).
	meshCtx, meshCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer meshCancel()
	if n.mesh != nil {
		n.wg.Go(func() { errc <- stopped(n.mesh.Run(meshCtx)) })
		n.reprovide(ctx)
	}
	n.wg.Go(func() {
		errc <- stopped(n.fills.Run(ctx))
		meshCancel()
	})
	n.wg.Go(func() { n.retain(ctx) })
	if n.cfg.autoMemory {
		n.wg.Go(func() { n.tuneMemory(ctx) })
	}
	close(n.ready)
	n.log.Info("node started", "rtsp", n.RTSPAddr().String(), "peer", n.PeerID())

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	cancel()
	n.stopFillers() // fills asked by neighbours stop waiting for the fills, which stop
	n.wg.Wait()
	n.close()
	return err
}

// stopped is a component's error from Run, nil when it stopped because
// Run's context ended.
func stopped(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// reprovide announces every complete recording the store holds: after a
// restart the node's recordings are found again.
func (n *Node) reprovide(ctx context.Context) {
	infos, err := n.store.List()
	if err != nil {
		n.log.Error("list recordings", "err", err)
		return
	}
	for _, in := range infos {
		if in.State == store.StateComplete {
			n.provide(ctx, in.Key)
		}
	}
}

// evicted is the store's eviction callback: the mesh stops announcing key.
func (n *Node) evicted(key string) {
	if n.mesh != nil {
		n.mesh.Forget(key)
	}
	n.metrics.evicted()
	n.log.Info("recording evicted", "stream", key)
}

// background runs fn on a goroutine that Run waits for.
func (n *Node) background(ctx context.Context, fn func(context.Context)) {
	n.wg.Go(func() { fn(ctx) })
}

// Ready is closed once Run is serving.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// RTSPAddr is the address players connect to.
func (n *Node) RTSPAddr() net.Addr { return n.edge.Addr() }

// PeerID is the node's libp2p peer id ("" without a mesh).
func (n *Node) PeerID() string {
	if n.mesh == nil {
		return ""
	}
	return n.mesh.ID()
}

// MeshAddrs are the node's full libp2p multiaddrs, /p2p/<id> included.
func (n *Node) MeshAddrs() []string {
	if n.mesh == nil {
		return nil
	}
	return n.mesh.Addrs()
}

// Store is the node's recording store (read-only use: listings, tests).
func (n *Node) Store() *store.Store { return n.store }

// Stream describes what the node holds for a request path.
func (n *Node) Stream(path string) (store.Info, error) {
	_, key, err := MapPath(n.cfg.Origins, path)
	if err != nil {
		return store.Info{}, err
	}
	return n.store.Info(key)
}

// Members are the mesh members the designated-filler rule counts now,
// this node included (none without a mesh).
func (n *Node) Members() []string {
	if n.mesh == nil {
		return nil
	}
	return n.mesh.Members()
}

// Peers are the mesh peers the node is connected to now (none without a mesh).
func (n *Node) Peers() []mesh.PeerInfo {
	if n.mesh == nil {
		return nil
	}
	return n.mesh.Peers()
}
