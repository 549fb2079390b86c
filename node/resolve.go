package node

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/store"
)

// Served says where a player's stream came from when it asked.
type Served string

// Where a stream was served from.
const (
	ServedLocal  Served = "local"  // a complete recording in this node's store
	ServedTail   Served = "tail"   // a fill already running on this node
	ServedPeer   Served = "peer"   // a new fill from a neighbour
	ServedOrigin Served = "origin" // a new fill from the origin
)

// recording is what a player of one stream holds: a store and a key, plus
// the fill it tails, if any.
type recording struct {
	n      *Node
	st     *store.Store
	key    string
	m      store.Manifest
	f      *fill
	served Served
	opened time.Time // set for players (Open): their session-end log line
}

func (r *recording) Manifest() store.Manifest { return r.m }

func (r *recording) NewReader(from time.Duration) (*store.Reader, error) {
	return r.st.NewReader(r.key, from)
}

// Delivered counts what the player was sent (rtspedge.DeliveryCounter).
func (r *recording) Delivered(packets, bytes uint64) { r.n.metrics.delivered(r.served, bytes) }

func (r *recording) Close() {
	if !r.opened.IsZero() {
		r.n.log.Info("player session end", "stream", r.key, "served", r.served,
			"duration", time.Since(r.opened).Round(time.Millisecond))
	}
	if r.f != nil {
		r.n.release(r.f)
	}
}

// Open resolves a player's request path to a recording it can read:
// a complete local recording, else the fill in progress for the key, else a
// new fill (peers first, then the origin). It implements rtspedge.Recordings.
//
// The client in ctx (rtspedge.ClientFrom) is held to the fills.* bounds:
// requests per second per connection and per address, fills at once in all
// and per address. Over one, Open returns an rtspedge.LimitError.
func (n *Node) Open(ctx context.Context, path string) (rtspedge.Recording, error) {
	client, _ := rtspedge.ClientFrom(ctx)
	if err := n.rates.allow(client, time.Now()); err != nil {
		n.metrics.refused(err)
		n.log.Info("player request refused", "path", path, "client", client.Addr, "err", err)
		return nil, err
	}
	origin, originURL, key, err := mapPath(n.cfg.Origins, path)
	if err != nil {
		n.metrics.requestFailed()
		return nil, err
	}
	rec, err := n.resolve(ctx, fillRequest{key: key, originURL: originURL, origin: origin, client: client.Addr})
	if err != nil {
		if n.metrics.refused(err) {
			n.log.Info("player request refused", "stream", key, "client", client.Addr, "err", err)
			return nil, err
		}
		n.metrics.requestFailed()
		n.log.Debug("player request failed", "stream", key, "err", err) // rtspedge logs the refusal
		return nil, err
	}
	n.metrics.request(rec.served)
	rec.opened = time.Now()
	n.log.Info("player session start", "stream", key, "served", rec.served, "source", rec.m.Source)
	return rec, nil
}

// fillRequest is what resolve needs to find or start a fill.
type fillRequest struct {
	key, originURL string
	origin         *Origin
	client         string // the player's address; "" for a prefetch
}

func (n *Node) resolve(ctx context.Context, req fillRequest) (*recording, error) {
	key := req.key
	n.fills.mu.Lock()
	f := n.fills.m[key]
	served := ServedTail
	if f == nil {
		// The flight merges only calls that overlap: check the store again
		// inside it, under the registry lock.
		m, err := n.store.Manifest(key)
		if err == nil && m.State == store.StateComplete {
			n.fills.mu.Unlock()
			return &recording{n: n, st: n.store, key: key, m: m, served: ServedLocal}, nil
		}
		if err := n.admitFillLocked(req.client); err != nil {
			n.fills.mu.Unlock()
			return nil, err
		}
		f = &fill{key: key, originURL: req.originURL, origin: req.origin, client: req.client,
			ready: make(chan struct{}), done: make(chan struct{})}
		n.fills.m[key] = f
		served = ""
		select {
		case n.startFill <- f:
		case <-ctx.Done():
			delete(n.fills.m, key)
			n.fills.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	f.joinLocked()
	n.fills.mu.Unlock()

	if err := f.wait(ctx); err != nil {
		n.release(f)
		return nil, err
	}
	m, err := f.st.Manifest(key)
	if err != nil {
		n.release(f)
		return nil, err
	}
	if served == "" {
		served = ServedOrigin
		if m.Source != sourceOrigin {
			served = ServedPeer
		}
	}
	return &recording{n: n, st: f.st, key: key, m: m, f: f, served: served}, nil
}

// release drops a player from a fill. A live fill, or a VOD fill when
// complete_on_abandon (its origin's, else cache's) is off, stops (after
// cache.live_linger for live) once its last player left; it stays partial
// and the next player resumes it. A prefetch holds its fill as a player
// until the end, so it always completes. A finished relay is dropped with
// its last player.
func (n *Node) release(f *fill) {
	n.fills.mu.Lock()
	f.players--
	idle := f.players == 0
	dropRelay := idle && f.ended && f.st == n.relay
	if idle && !f.ended && f.cancel != nil && (f.live || !n.cfg.completeOnAbandon(f.origin)) {
		var linger time.Duration
		if f.live {
			linger = time.Duration(n.cfg.Cache.LiveLinger)
		}
		cancel := f.cancel
		f.linger = time.AfterFunc(linger, func() {
			n.fills.mu.Lock()
			defer n.fills.mu.Unlock()
			if f.players == 0 {
				cancel(errNoPlayers)
			}
		})
	}
	n.fills.mu.Unlock()
	if dropRelay {
		_ = n.relay.Delete(f.key)
	}
}

const sourceOrigin = "origin"

// errNoPlayers is why a fill stops cache.live_linger after its last player
// left (or at once, for a VOD fill with cache.complete_on_abandon off).
var errNoPlayers = errors.New("no players left")

// runFill fills one stream: from providers in the mesh, nearest first, then
// from the origin, resuming from the last verified segment at each step.
// It runs on a goroutine owned by Run.
func (n *Node) runFill(ctx context.Context, f *fill) {
	defer close(f.done)
	defer n.metrics.fillEnded(f, time.Now())
	defer func() {
		n.fills.mu.Lock()
		delete(n.fills.m, f.key)
		if f.linger != nil {
			f.linger.Stop()
		}
		n.fills.mu.Unlock()
	}()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n.fills.mu.Lock()
	f.cancel = cancel
	n.fills.mu.Unlock()

	log := n.log.With("stream", f.key)
	start := time.Now()
	var w *store.Writer
	// A partial recording (a crash, a dead origin) resumes where it stopped,
	// when there is space to store more: otherwise the fill relays (below)
	// and the recording stays as it is.
	if m, err := n.store.Manifest(f.key); err == nil && n.store.Storing() {
		if m.Live || m.State == store.StateFilling {
			_ = n.store.Delete(f.key)
		} else if m.State == store.StatePartial {
			if w, err = n.store.Resume(f.key); err != nil {
				log.Warn("cannot resume partial recording; starting over", "err", err)
				_ = n.store.Delete(f.key)
				w = nil
			} else {
				f.setReady(n.store)
			}
		}
	}
	finish := func(st store.State, source string, err error) {
		if w == nil {
			return
		}
		if ferr := w.Finish(st); ferr != nil {
			log.Error("finish recording", "err", ferr)
		}
		m := w.Manifest()
		lvl := slog.LevelInfo
		if err != nil && ctx.Err() != nil {
			// Stopped on purpose: its players left, or the node stops.
			err = context.Cause(ctx)
		} else if err != nil {
			lvl = slog.LevelWarn
		}
		log.Log(ctx, lvl, "fill end", "source", source, "state", st, "bytes", m.Bytes,
			"packets", m.Packets, "duration", time.Since(start).Round(time.Millisecond), "err", err)
	}

	if n.mesh != nil {
		var done bool
		w, done = n.fillFromPeers(ctx, f, w, log)
		if done {
			st := store.StateComplete
			if w.Manifest().Live {
				st = store.StatePartial // the origin ended it: what was live stays partial
			}
			finish(st, "peer", nil)
			return
		}
	}
	if ctx.Err() != nil {
		if w == nil {
			f.fail(ctx.Err())
		}
		finish(store.StatePartial, "peer", ctx.Err())
		return
	}
	w, err := n.fillFromOrigin(ctx, f, w, log)
	switch {
	case w == nil:
		// The origin never answered: nothing was stored.
		f.fail(err)
		log.Warn("fill failed", "source", sourceOrigin, "err", err)
	case err == nil && !w.Manifest().Live:
		finish(store.StateComplete, sourceOrigin, nil)
	case err == nil:
		// The origin ended the live stream (RTCP BYE): relays end with it.
		if uerr := w.Update(func(m *store.Manifest) { m.Ended = true }); uerr != nil {
			log.Warn("mark the live stream ended", "err", uerr)
		}
		finish(store.StatePartial, sourceOrigin, nil)
	default:
		finish(store.StatePartial, sourceOrigin, err)
	}
	n.fills.mu.Lock()
	f.ended = true
	n.fills.mu.Unlock()
	n.dropRelayWhenIdle(f)
}

// fillFromOrigin pulls f.key from its origin into w (creating it when nil).
func (n *Node) fillFromOrigin(ctx context.Context, f *fill, w *store.Writer, log *slog.Logger) (*store.Writer, error) {
	req := n.cfg.originRequest(f.origin, f.originURL)
	req.Timeout = time.Duration(n.cfg.OriginTimeout)
	req.Logger = n.log
	req.OnClassify = func(live bool) {
		n.fills.mu.Lock()
		f.live = live
		n.fills.mu.Unlock()
	}
	o, err := rtspedge.OpenOrigin(ctx, req)
	if err != nil {
		return w, err
	}
	defer o.Close()
	if w == nil {
		m := emptyCopy(o.Manifest(), f.key, sourceOrigin)
		st := n.store
		if !o.Cacheable() || !st.Storing() {
			// Uncacheable, or no space to store (cache.min_free, the
			// quota): relayed to players without storing.
			st = n.relay
			_ = st.Delete(f.key) // a finished relay of the same stream still held by its last player
		}
		if w, err = st.Create(m); err != nil {
			return nil, err
		}
		n.fills.mu.Lock()
		f.live = m.Live
		n.fills.mu.Unlock()
		f.setReady(st)
		if st == n.store { // live too: neighbours relay from this node
			n.provide(ctx, f.key)
		}
	} else {
		_ = w.Update(func(m *store.Manifest) { m.Source, m.Via = sourceOrigin, nil })
	}
	log.Info("fill start", "source", sourceOrigin, "live", w.Manifest().Live)
	before := bytesOf(w)
	err = n.pullOrigin(ctx, f, w, o, log)
	n.metrics.filled(f, sourceOrigin, before, w)
	return w, err
}

// provide announces key in the mesh without holding up the fill.
func (n *Node) provide(ctx context.Context, key string) {
	if n.mesh == nil {
		return
	}
	n.background(ctx, func(ctx context.Context) {
		if err := n.mesh.Provide(ctx, key); err != nil {
			n.log.Info("provide failed; the re-provide loop will retry", "stream", key, "err", err)
		}
	})
}

// dropRelayWhenIdle deletes a relayed (uncacheable) recording once its fill
// has ended and no player reads it: nothing of it outlives its players.
func (n *Node) dropRelayWhenIdle(f *fill) {
	n.fills.mu.Lock()
	idle := f.ended && f.players == 0 && f.st == n.relay
	n.fills.mu.Unlock()
	if idle {
		_ = n.relay.Delete(f.key)
	}
}

var (
	_ rtspedge.Recordings      = (*Node)(nil)
	_ rtspedge.DeliveryCounter = (*recording)(nil)
)
var _ = mesh.Provider{}
