package fill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/store"
)

// DefaultFillerReach is how long a node waits for its stream's designated
// filler to accept a request before it takes over (mesh.filler_reach).
const DefaultFillerReach = time.Second

// fillerReadyMax bounds the wait for a filler that accepted to have its
// recording: its own provider lookup and origin session come first.
const fillerReadyMax = 30 * time.Second

// fillerReasks bounds how often one fill asks a filler that is still
// connected again after its upstream ended early.
const fillerReasks = 2

// fillerRetry is the wait between two asks of a live filler that is between
// sources itself (its own upstream died and it is choosing the next).
const fillerRetry = 50 * time.Millisecond

// FillerInfo says which node fills a stream from its origin, as this node
// chose it, and why.
type FillerInfo struct {
	ID  string // the filler's peer id ("" before a choice)
	Why string // e.g. "closest of 8 known members", "filler … unreachable: took over"
}

// fillerSource is the first source of a fill in a mesh: the stream's
// designated filler (mesh.Filler), asked over the filler protocol and then
// tailed as a peer. When this node is the filler, or every closer member
// failed, it offers nothing and the next sources (peers, the origin) go on;
// after a takeover the peers are skipped, since they tail the filler that
// failed and would tail this node in turn.
type fillerSource struct {
	fs       *Fills
	f        *fill
	skip     map[string]bool // members left out: they failed or refused
	why      string          // why the last member was left out
	done     bool            // this node is the filler: the next sources go on
	tookOver bool            // … after another member failed
	current  string          // the filler the last upstream came from
	reasks   int             // times a filler still connected was asked again
	// copies judges a VOD copy by this node's freshness policy, as it
	// does a provider's (fresh.go, adopt): the filler's own policy may
	// call fresh what this node's calls stale.
	copies *peers
}

func newFillerSource(fs *Fills, f *fill) *fillerSource {
	return &fillerSource{fs: fs, f: f, skip: make(map[string]bool)}
}

func (*fillerSource) name() string { return "peer" }

func (s *fillerSource) next(ctx context.Context, w *store.Writer) (Upstream, error) {
	msh, key := s.fs.cfg.Mesh, s.f.key
	log := s.fs.log.With("stream", key)
	if cur := s.current; cur != "" {
		// The filler's upstream ended early. A filler still connected
		// (its relay fell behind or stalled; its own source changed) is
		// asked again, up to fillerReasks times; one that left is left out.
		s.current = ""
		s.reasks++
		if s.reasks > fillerReasks || !slices.Contains(msh.Members(), cur) {
			s.skip[cur] = true
			s.why = fmt.Sprintf("filler %s died mid-fill", short(cur))
		}
	}
	for !s.done && ctx.Err() == nil {
		fl := msh.Filler(key, func(id string) bool { return s.skip[id] })
		if fl.Self || fl.ID == "" {
			s.done = true
			why := ClosestWhy(fl.Known)
			if len(s.skip) > 0 {
				s.tookOver = true
				why = s.why + ": took over"
			}
			s.fs.setFiller(s.f, FillerInfo{ID: msh.ID(), Why: why})
			return nil, nil
		}
		up, err := s.ask(ctx, fl.ID, w)
		if err != nil {
			s.skip[fl.ID] = true
			switch {
			case errors.Is(err, mesh.ErrNotConfigured):
				s.why = fmt.Sprintf("filler %s has no such origin", short(fl.ID))
			case errors.Is(err, mesh.ErrFillerUnreachable):
				s.why = fmt.Sprintf("filler %s unreachable", short(fl.ID))
			default:
				s.why = fmt.Sprintf("filler %s failed", short(fl.ID))
			}
			log.Info("designated filler did not serve; choosing the next", "filler", fl.ID, "err", err)
			continue
		}
		why := ClosestWhy(fl.Known)
		if len(s.skip) > 0 {
			why = s.why + ": next closest"
		}
		s.fs.setFiller(s.f, FillerInfo{ID: fl.ID, Why: why})
		if h := s.fs.cfg.Hooks.FromFiller; h != nil {
			h(key, fl.ID)
		}
		s.current = fl.ID
		return up, nil
	}
	return nil, ctx.Err()
}

// ask asks member id to fill the key and opens a fill from it. A live
// filler that is between sources is asked again until it has one. The
// filler is told whether anybody plays the fill here now: a prefetch's
// hold is no player there either, so its fill may pull ranges at once.
func (s *fillerSource) ask(ctx context.Context, id string, w *store.Writer) (Upstream, error) {
	msh, key := s.fs.cfg.Mesh, s.f.key
	reach := s.fs.cfg.FillerReach
	if reach <= 0 {
		reach = DefaultFillerReach
	}
	wctx, cancel := context.WithTimeout(ctx, reach+fillerReadyMax)
	defer cancel()
	unwatched := s.fs.unwatched(s.f)
	hold, err := msh.AskFiller(wctx, id, key, reach, unwatched)
	if err != nil {
		return nil, err
	}
	from := uint32(0)
	if w != nil {
		m := w.Manifest()
		from = m.NextSegment()
		if _, _, held := w.Last(); m.Live && held {
			from = mesh.FromLiveEdge
		}
	}
	for {
		pf, err := msh.OpenFill(wctx, mesh.Provider{ID: id}, key, from)
		if err == nil {
			if m := pf.Manifest(); m.Live && (slices.Contains(m.Via, msh.ID()) || len(m.Via)+1 > s.fs.cfg.LiveMaxHops) {
				// The filler relays from this node, or sits too deep:
				// leave it out as a peer source would.
				pf.Close()
				hold.Close()
				return nil, fmt.Errorf("%w: live relay %d hops from the origin (live_max_hops %d) or through this node",
					mesh.ErrFillerFailed, len(m.Via)+1, s.fs.cfg.LiveMaxHops)
			}
			var renewed *store.Freshness
			if m := pf.Manifest(); !m.Live && s.copies != nil {
				ok, r := s.copies.adopt(ctx, m)
				if !ok {
					pf.Close()
					hold.Close()
					return nil, fmt.Errorf("%w: its copy is stale by this node's policy or replaced at the origin", mesh.ErrFillerFailed)
				}
				renewed = r
			}
			return &fillerUpstream{peerUpstream: peerUpstream{PeerFill: pf, renewed: renewed}, hold: hold,
				fs: s.fs, f: s.f, unwatched: unwatched}, nil
		}
		if !errors.Is(err, mesh.ErrUnavailable) || sleepCtx(wctx, fillerRetry) != nil {
			hold.Close()
			return nil, fmt.Errorf("%w: %w", mesh.ErrFillerFailed, err)
		}
	}
}

// fillerUpstream tails the designated filler's recording and holds its
// fill open while it does.
type fillerUpstream struct {
	peerUpstream
	hold      *mesh.FillerHold
	fs        *Fills
	f         *fill
	unwatched bool // what the filler was told last
}

// Run tails the filler's recording. For an on-demand stream it tells the
// filler whenever this node's fill gains its first watcher or loses its
// last (a player joins a prefetch, or leaves a fill that goes on), so
// that the filler's fill pulls ranges at once only while nobody watches
// here either.
func (u *fillerUpstream) Run(ctx context.Context, w *store.Writer) error {
	if u.Manifest().Live {
		return u.peerUpstream.Run(ctx, w)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { u.tell(ctx) })
	return u.peerUpstream.Run(ctx, w)
}

// tell says to the filler whether anybody watches here, each time that
// changes, until ctx ends or the hold fails (Run then sees the stream end).
func (u *fillerUpstream) tell(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.f.watchNote:
		}
		now := u.fs.unwatched(u.f)
		if now == u.unwatched {
			continue
		}
		if err := u.hold.SetUnwatched(now); err != nil {
			u.fs.log.Debug("tell the designated filler whether anybody watches", "stream", u.f.key, "err", err)
			return
		}
		u.unwatched = now
	}
}

func (u *fillerUpstream) Close() {
	u.peerUpstream.Close()
	u.hold.Close()
}

// ClosestWhy is why the rule chose a filler among known members.
func ClosestWhy(known int) string { return fmt.Sprintf("closest of %d known members", known) }

// short is a peer id's tail, as the dashboard shows it.
func short(id string) string {
	if len(id) > 8 {
		return "…" + id[len(id)-8:]
	}
	return id
}

// maxFillers bounds how many streams' last filler choice Fills remembers.
const maxFillers = 4096

// setFiller records f's filler for Snapshot and LastFiller.
func (fs *Fills) setFiller(f *fill, fi FillerInfo) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f.filler = fi
	if fs.fillers == nil {
		fs.fillers = make(map[string]FillerInfo)
	}
	if _, ok := fs.fillers[f.key]; !ok && len(fs.fillers) >= maxFillers {
		for k := range fs.fillers { // forget one: it is for the dashboard only
			delete(fs.fillers, k)
			break
		}
	}
	fs.fillers[f.key] = fi
}

// LastFiller is the filler key's last fill chose on this node, and why;
// ok is false when no fill of key chose one (or it was forgotten).
func (fs *Fills) LastFiller(key string) (fi FillerInfo, ok bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fi, ok = fs.fillers[key]
	return fi, ok
}

// Budget bounds the concurrent origin sessions of one origin on this node
// (origins[].max_sessions); nil is unlimited. Together with the designated
// filler, which is the only node of a mesh that opens a stream's origin
// session, it bounds them mesh-wide.
type Budget struct {
	slots chan struct{}
}

// NewBudget returns a budget of n sessions; nil for n ≤ 0 (unlimited).
func NewBudget(n int) *Budget {
	if n <= 0 {
		return nil
	}
	return &Budget{slots: make(chan struct{}, n)}
}

// acquire waits for a free session slot until ctx ends; release frees it
// (idempotent). A nil budget always has one.
func (b *Budget) acquire(ctx context.Context) (release func(), err error) {
	if b == nil {
		return func() {}, nil
	}
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("origin max_sessions (%d) in use: %w", cap(b.slots), ctx.Err())
	}
	return b.releaser(), nil
}

// releaser frees a slot taken, once.
func (b *Budget) releaser() func() {
	var once sync.Once
	return func() { once.Do(func() { <-b.slots }) }
}

// tryAcquire takes a slot if one is free now.
func (b *Budget) tryAcquire() (release func(), ok bool) {
	if b == nil {
		return func() {}, true
	}
	select {
	case b.slots <- struct{}{}:
	default:
		return nil, false
	}
	return b.releaser(), true
}

// InUse is how many of the budget's sessions are open.
func (b *Budget) InUse() int {
	if b == nil {
		return 0
	}
	return len(b.slots)
}
