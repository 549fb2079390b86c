package fill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/store"
)

// Config is what Fills needs from the node.
type Config struct {
	Store *store.Store // recordings
	Relay *store.Store // uncacheable streams on their way to players
	Mesh  *mesh.Mesh   // nil: no peer source, the origin only

	OriginTimeout     time.Duration // rtspedge.OriginRequest.Timeout
	LiveReconnect     time.Duration // cache.live_reconnect; 0: a lost live origin ends the fill
	LiveLinger        time.Duration // cache.live_linger
	LiveMaxHops       int           // mesh.live_max_hops
	MaxFills          int           // fills.max_concurrent: fills running at once; 0: no bound
	MaxFillsPerClient int           // fills.max_per_client: fills a client started still running; 0: no bound

	// Designated fillers and session budgets (issue 16, filler.go).
	FillerReach time.Duration            // mesh.filler_reach; 0: DefaultFillerReach
	Budget      func(key string) *Budget // key's origin's max_sessions; nil or a nil Budget: unlimited

	Logger *slog.Logger
	Hooks  Hooks
}

// Hooks tell the node what fills do. Each may be nil; each is called on a
// fill's goroutine and must not block.
type Hooks struct {
	// Created: a fill created key's recording in Store (never for Relay),
	// which the node announces in the mesh. ctx ends with the fill.
	Created func(ctx context.Context, key string)
	// LookedUp: a fill looked key up in the mesh and found providers.
	LookedUp func(key string, providers []string, took time.Duration, err error)
	// FromFiller: a fill tails key's designated filler, the peer filler
	// (it holds the recording, as a provider found by a lookup does).
	FromFiller func(key, filler string)
	// Filled: source ("peer" or "origin") added bytes to a recording.
	Filled func(source string, bytes uint64)
	// Ended: a fill ended with result "complete", "partial" or "failed".
	Ended func(result string, took time.Duration)
}

// Fills is the registry of fills in progress, keyed by stream key. New
// fills start on Run's goroutines.
type Fills struct {
	cfg   Config
	log   *slog.Logger
	start chan *fill // Open → Run: a fill to start

	mu      sync.Mutex
	m       map[string]*fill
	fillers map[string]FillerInfo // last filler chosen per key (filler.go)
	// speedless are the origins (host:port) found to slow their RTP clock
	// with Speed: their fills ask for none (origin.go).
	speedless map[string]bool

	fresh freshCounters // revalidations (fresh.go)
}

// New returns the registry of cfg's stores. Nothing runs before Run.
func New(cfg Config) *Fills {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Fills{cfg: cfg, log: cfg.Logger, start: make(chan *fill), m: make(map[string]*fill)}
}

// Run starts the fills Open asks for until ctx ends, then waits for every
// fill it started to stop, and returns nil.
func (fs *Fills) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case f := <-fs.start:
			wg.Go(func() { fs.run(ctx, f) })
		case <-ctx.Done():
			return nil
		}
	}
}

// A fill copies one stream into a store. There is at most one fill per key;
// every reader that asks for the key while the fill runs tails the same
// recording.
type fill struct {
	key               string
	origin            rtspedge.OriginRequest // URL with credentials: for dialing only, never logged
	client            string                 // Request.Client of the reader that started it
	completeOnAbandon bool
	ranges            int      // Request.RangeParallelism
	opts              openOpts // the freshness check that opened it (fresh.go)

	ready chan struct{} // closed when the recording exists (st set) or err is set
	done  chan struct{} // closed when the fill goroutine has returned

	// Set before ready is closed, read-only after.
	st     *store.Store
	err    error
	ready1 sync.Once

	// Guarded by Fills.mu.
	readers int
	// watchers are the readers that play it at real time: not a prefetch's
	// hold. A VOD fill nobody watches may pull ranges at once (origin.go).
	watchers int
	// watchNote gets a value (never blocking: it holds one) when watchers
	// turns 0 or leaves 0, for a filler upstream to tell its filler.
	watchNote chan struct{}
	linger    *time.Timer
	cancel    context.CancelCauseFunc
	live      bool
	ended     bool       // the fill goroutine is done with the recording
	filler    FillerInfo // who fills the stream from its origin, and why
	// progress is where the fill began writing (progress.go).
	progress progressStart
	// liveHead is the node whose origin session the live packets stored
	// last came from (liveHead in rebase.go); only the fill goroutine
	// (fillFrom) uses it.
	liveHead string

	// Owned by the fill goroutine.
	tally tally
}

// setReady publishes the recording readers tail; fail publishes why there
// is none. Only the first of them counts.
func (f *fill) setReady(st *store.Store) {
	f.ready1.Do(func() { f.st = st; close(f.ready) })
}

func (f *fill) fail(err error) {
	f.ready1.Do(func() { f.err = err; close(f.ready) })
}

// wait blocks until the fill's recording exists, the fill failed, or ctx ends.
func (f *fill) wait(ctx context.Context) error {
	select {
	case <-f.ready:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Served says where a reader's stream came from when it asked.
type Served string

// Where a stream was served from.
const (
	ServedLocal  Served = "local"  // a complete recording in the store
	ServedTail   Served = "tail"   // a fill already running
	ServedPeer   Served = "peer"   // a new fill from a neighbour
	ServedOrigin Served = "origin" // a new fill from the origin
)

// Recording is what a reader of one stream holds: a store and a key, plus
// the fill it tails, if any. Release it when done.
type Recording struct {
	fs  *Fills
	st  *store.Store
	key string
	// m is the manifest without its segment list: a Recording lives as long
	// as its player, and the list is 232 bytes a segment (500 players of a
	// 10-minute recording held 60 MB of copies; issue 15).
	m        store.Manifest
	f        *fill
	served   Served
	prefetch bool // Request.Prefetch: not a watcher of f

	warning string // the Warning a player's DESCRIBE answer carries
}

// Manifest is the recording's manifest when it was opened, without its
// segment list (Segments is nil).
func (r *Recording) Manifest() store.Manifest { return r.m }

// Store holds the recording: the node's store, or its relay store.
func (r *Recording) Store() *store.Store { return r.st }

// Key is the stream key.
func (r *Recording) Key() string { return r.key }

// Served says where the stream came from.
func (r *Recording) Served() Served { return r.served }

// NewReader reads the recording from offset from.
func (r *Recording) NewReader(from time.Duration) (*store.Reader, error) {
	return r.st.NewReader(r.key, from)
}

// Span returns the stored window of the recording: the tt of its oldest
// packet and of its newest.
func (r *Recording) Span() (first, last time.Duration, err error) {
	return r.st.Span(r.key)
}

// Done is closed when the fill the recording tails has ended; nil for a
// complete local recording.
func (r *Recording) Done() <-chan struct{} {
	if r.f == nil {
		return nil
	}
	return r.f.done
}

// Release drops the reader from the fill it tails.
func (r *Recording) Release() {
	if r.f != nil {
		r.fs.mu.Lock()
		watcher := !r.prefetch
		r.fs.mu.Unlock()
		r.fs.release(r.f, watcher)
	}
}

// SetPrefetch says whether the reader only holds the recording (true: a
// prefetch's hold, or a neighbour's that says nobody watches there) or
// plays it at real time (false), as Request.Prefetch does for the Open
// that returned it; a fill nobody watches may pull ranges at once. Not
// after Release.
func (r *Recording) SetPrefetch(prefetch bool) {
	if r.f == nil {
		return
	}
	r.fs.mu.Lock()
	defer r.fs.mu.Unlock()
	if r.prefetch == prefetch {
		return
	}
	r.prefetch = prefetch
	if prefetch {
		r.f.addWatchers(-1)
	} else {
		r.f.addWatchers(1)
	}
}

// Request is what Open needs to find a recording or start its fill.
type Request struct {
	Key string
	// Origin is how to pull from the origin: URL (with credentials) and
	// its policy (redirects, Basic, MaxBitrate); the fill sets Timeout,
	// Logger, AskMetaInfo and OnClassify.
	Origin rtspedge.OriginRequest
	// CompleteOnAbandon: a VOD fill goes on to the end after its last
	// reader left (the origin's complete_on_abandon).
	CompleteOnAbandon bool
	// Client is the address of the player that asks; "" (a prefetch)
	// counts only against MaxFills.
	Client string
	// Policy is the origin's freshness policy (fresh.go); nil: DefaultPolicy.
	Policy *Policy
	// OnlyIfCached: the player said Cache-Control: only-if-cached; answer
	// from this node or a peer, never the origin (else rtspedge.ErrNotCached).
	OnlyIfCached bool
	// Prefetch: nobody plays what this Open holds, so it does not keep the
	// fill from pulling ranges at once.
	Prefetch bool
	// RangeParallelism is the most origin sessions a VOD fill that nobody
	// watches pulls at once, each at the Speed the origin grants (the
	// origin's range_parallelism); below 2, one.
	RangeParallelism int
}

// The bounds Open refuses a new fill with (503 to a player, with the
// reason phrase).
var (
	ErrTooManyFills          = &rtspedge.LimitError{Limit: "fills", Reason: "too many fills"}
	ErrTooManyFillsForClient = &rtspedge.LimitError{Limit: "fills_per_client", Reason: "too many fills for this client"}
)

// open resolves req.Key to a recording: a complete one in the store that
// o accepts, else the fill in progress for it, else a new fill (peers
// first, then the origin unless o.cachedOnly) if MaxFills and
// MaxFillsPerClient allow one. ctx bounds the wait for the fill's first
// source only. Open (fresh.go) checks freshness first.
func (fs *Fills) open(ctx context.Context, req Request, o openOpts) (*Recording, error) {
	key := req.Key
	fs.mu.Lock()
	f := fs.m[key]
	served := ServedTail
	if f == nil {
		// The flight merges only calls that overlap: check the store again
		// inside it, under the registry lock.
		m, err := fs.cfg.Store.Manifest(key)
		if err == nil && m.State == store.StateComplete && o.accepts(m) {
			fs.mu.Unlock()
			m.Segments = nil // see Recording.m
			return &Recording{fs: fs, st: fs.cfg.Store, key: key, m: m, served: ServedLocal}, nil
		}
		if o.cachedOnly && fs.cfg.Mesh == nil {
			fs.mu.Unlock()
			return nil, fmt.Errorf("%s: %w: not stored here, and no mesh", key, rtspedge.ErrNotCached)
		}
		if err := fs.admitLocked(req.Client); err != nil {
			fs.mu.Unlock()
			return nil, err
		}
		f = &fill{key: key, origin: req.Origin, client: req.Client, completeOnAbandon: req.CompleteOnAbandon, opts: o,
			ranges: req.RangeParallelism, ready: make(chan struct{}), done: make(chan struct{}), watchNote: make(chan struct{}, 1)}
		fs.m[key] = f
		served = ""
		select {
		case fs.start <- f:
		case <-ctx.Done():
			delete(fs.m, key)
			fs.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	fs.joinLocked(f, !req.Prefetch)
	fs.mu.Unlock()

	if err := f.wait(ctx); err != nil {
		fs.release(f, !req.Prefetch)
		if f.opts.cachedOnly && ctx.Err() == nil {
			return nil, fmt.Errorf("%s: %w: no peer holds it: %w", key, rtspedge.ErrNotCached, err)
		}
		return nil, err
	}
	m, err := f.st.Manifest(key)
	if err != nil {
		fs.release(f, !req.Prefetch)
		return nil, err
	}
	if served == "" {
		served = ServedOrigin
		if m.Source != store.SourceOrigin {
			served = ServedPeer
		}
	}
	m.Segments = nil // see Recording.m
	return &Recording{fs: fs, st: f.st, key: key, m: m, f: f, served: served, prefetch: req.Prefetch}, nil
}

// admitLocked says whether one more fill may start for client. fs.mu must
// be held.
func (fs *Fills) admitLocked(client string) error {
	if fs.cfg.MaxFills > 0 && len(fs.m) >= fs.cfg.MaxFills {
		return ErrTooManyFills
	}
	if client == "" || fs.cfg.MaxFillsPerClient <= 0 {
		return nil
	}
	mine := 0
	for _, f := range fs.m {
		if f.client == client {
			mine++
		}
	}
	if mine >= fs.cfg.MaxFillsPerClient {
		return ErrTooManyFillsForClient
	}
	return nil
}

// joinLocked counts one more reader of f (a player, or a neighbour relaying
// a live stream; a watcher unless a prefetch's) and cancels a pending
// linger. fs.mu must be held.
func (fs *Fills) joinLocked(f *fill, watcher bool) {
	f.readers++
	if watcher {
		f.addWatchers(1)
	}
	if f.linger != nil {
		f.linger.Stop()
		f.linger = nil
	}
}

// addWatchers changes f's watchers by d; when they leave 0 or turn 0,
// watchNote says so. Fills.mu must be held.
func (f *fill) addWatchers(d int) {
	was := f.watchers
	f.watchers += d
	if (was == 0) != (f.watchers == 0) {
		select {
		case f.watchNote <- struct{}{}:
		default: // the note pending says it
		}
	}
}

// release drops a reader from a fill. A live fill, or a VOD fill whose
// Request.CompleteOnAbandon was off, stops (after LiveLinger for live) once
// its last reader left: it stays partial and the next reader resumes it. A
// fill that goes on still counts against its client's MaxFillsPerClient.
// A finished relay is dropped with its last reader.
func (fs *Fills) release(f *fill, watcher bool) {
	fs.mu.Lock()
	f.readers--
	if watcher {
		f.addWatchers(-1)
	}
	idle := f.readers == 0
	dropRelay := idle && f.ended && f.st == fs.cfg.Relay
	if idle && !f.ended && f.cancel != nil && (f.live || !f.completeOnAbandon) {
		var linger time.Duration
		if f.live {
			linger = fs.cfg.LiveLinger
		}
		cancel := f.cancel
		f.linger = time.AfterFunc(linger, func() {
			fs.mu.Lock()
			defer fs.mu.Unlock()
			if f.readers == 0 {
				cancel(errNoReaders)
			}
		})
	}
	fs.mu.Unlock()
	if dropRelay {
		_ = fs.cfg.Relay.Delete(f.key)
	}
}

// errNoReaders is why a fill stops LiveLinger after its last reader left
// (or at once, for a VOD fill without CompleteOnAbandon).
var errNoReaders = errors.New("no players left")

// JoinLive counts a neighbour that relays key from this node as a reader of
// the node's live fill of it, so the upstream stays open (no linger) while
// any neighbour relays it. done drops it. It is mesh.Config.ServingLive.
func (fs *Fills) JoinLive(key string) (done func()) {
	fs.mu.Lock()
	f := fs.m[key]
	if f == nil || !f.live {
		fs.mu.Unlock()
		return func() {}
	}
	fs.joinLocked(f, true)
	fs.mu.Unlock()
	return func() { fs.release(f, true) }
}

// Info is one fill in progress as a Snapshot shows it.
type Info struct {
	Key     string
	Live    bool
	Readers int
	Filler  FillerInfo
	// Progress is how far it is; zero before it writes (Writing false).
	Progress Progress
	Writing  bool
}

// Snapshot lists the fills in progress.
func (fs *Fills) Snapshot() []Info {
	fs.mu.Lock()
	out := make([]Info, 0, len(fs.m))
	starts := make([]progressStart, 0, len(fs.m))
	for _, f := range fs.m {
		out = append(out, Info{Key: f.key, Live: f.live, Readers: f.readers, Filler: f.filler})
		starts = append(starts, f.progress)
	}
	fs.mu.Unlock()
	// The recordings' own locks are taken outside the registry's.
	now := time.Now()
	for i := range out {
		out[i].Progress, out[i].Writing = starts[i].progress(now)
	}
	return out
}
