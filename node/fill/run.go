package fill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/store"
)

// Upstream is one opened source of a recording: a peer or the origin.
type Upstream interface {
	// Manifest describes the stream as this node records it from the
	// upstream: description, live or VOD, and provenance (Source, Via).
	Manifest() store.Manifest
	// Cacheable is false for a stream to relay to players, never keep.
	Cacheable() bool
	// Run copies the stream into w until it ends (nil) or fails; w then
	// holds only verified packets and another upstream can go on.
	Run(ctx context.Context, w *store.Writer) error
	// Close ends the upstream's session; it is idempotent.
	Close()
}

// A source yields the upstreams of one fill in the order to try them.
type source interface {
	// name is "peer" or "origin", as logs and metrics say it.
	name() string
	// next opens the next upstream to fill w (nil: no recording yet) from;
	// nil when none is left, with the reason when there is one.
	next(ctx context.Context, w *store.Writer) (Upstream, error)
}

// errNoUpstream: a source had no upstream to offer.
var errNoUpstream = errors.New("no upstream answered")

// sources are f's sources in order: the stream's designated filler, the
// mesh's providers, then the origin.
func (fs *Fills) sources(f *fill) []source {
	var out []source
	if fs.cfg.Mesh != nil {
		fl := newFillerSource(fs, f)
		p := newPeers(fs, f)
		p.after = fl
		fl.copies = p
		out = append(out, fl, p)
	}
	if f.opts.cachedOnly {
		return out // only-if-cached: never the origin
	}
	return append(out, &originSource{fs: fs, f: f})
}

// run fills one stream, on a goroutine owned by Run: from each source in
// order, resuming from the last verified segment at each step.
func (fs *Fills) run(ctx context.Context, f *fill) {
	start := time.Now()
	result := "failed"
	defer close(f.done)
	defer func() { // once f has left the registry
		if fs.cfg.Hooks.Ended != nil {
			fs.cfg.Hooks.Ended(result, time.Since(start))
		}
	}()
	defer fs.remove(f)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fs.mu.Lock()
	f.cancel = cancel
	fs.mu.Unlock()

	log := fs.log.With("stream", f.key)
	w := fs.resume(f, log)
	var (
		label string
		err   error
	)
	srcs := fs.sources(f)
	for i, s := range srcs {
		label = s.name()
		if w, err = fs.fillFrom(ctx, f, s, w, i == len(srcs)-1, log); err == nil || ctx.Err() != nil || errors.Is(err, mesh.ErrRelayedSeal) {
			break
		}
	}
	if errors.Is(err, mesh.ErrRelayedSeal) {
		fs.dropForged(f, w, err, log)
	}
	result = fs.finish(ctx, f, w, label, err, start, log)
	fs.mu.Lock()
	f.ended = true
	fs.mu.Unlock()
	fs.dropRelayWhenIdle(f)
}

// dropForged deletes f's recording after packets a peer relayed of a
// segment did not match the segment's seal: its players, who were served
// them, are ended (their reads fail), and nothing of it stays.
func (fs *Fills) dropForged(f *fill, w *store.Writer, err error, log *slog.Logger) {
	log.Warn("relayed packets do not match their seal; dropping the recording and ending its players", "err", err)
	if ferr := w.Finish(store.StatePartial); ferr != nil {
		log.Warn("finish the dropped recording", "err", ferr)
	}
	if derr := f.st.Delete(f.key); derr != nil {
		log.Warn("drop the recording", "err", derr)
	}
}

// resume opens the writer of a partial recording (a crash, a dead origin)
// of f's key; a live or unfinished one is dropped. Nil when there is none,
// or when the store has no space to store more (the fill then relays and
// the recording stays as it is).
func (fs *Fills) resume(f *fill, log *slog.Logger) *store.Writer {
	st := fs.cfg.Store
	m, err := st.Manifest(f.key)
	switch {
	case err != nil || !st.Storing():
		return nil
	case m.Live || m.State == store.StateFilling:
		_ = st.Delete(f.key)
		return nil
	case m.State != store.StatePartial:
		return nil
	}
	w, err := st.Resume(f.key)
	if err != nil {
		log.Warn("cannot resume partial recording; starting over", "err", err)
		_ = st.Delete(f.key)
		return nil
	}
	f.setReady(st)
	return w
}

// fillFrom runs s's upstreams into w (creating it when nil) one after the
// other until one ends the stream (nil), s has none left, or ctx ends. last
// says no source follows s.
func (fs *Fills) fillFrom(ctx context.Context, f *fill, s source, w *store.Writer, last bool, log *slog.Logger) (*store.Writer, error) {
	failed := errNoUpstream
	for ctx.Err() == nil {
		up, err := s.next(ctx, w)
		if up == nil {
			if err != nil {
				failed = err
			}
			return w, failed
		}
		held := false
		if w != nil {
			_, _, held = w.Last()
		}
		if w, err = fs.writerFor(ctx, f, s, up, w, log); err != nil {
			up.Close()
			return w, err
		}
		if m := up.Manifest(); m.Live {
			// A relay of another origin session than the packets w holds
			// (a healed partition's other half) is re-based onto them.
			head := liveHead(m)
			if sp, ok := up.(interface{ SetSplice(mesh.Splice) }); ok && held && f.liveHead != "" && head != f.liveHead {
				sp.SetSplice(newSwitchSplice(w, m, log))
			}
			f.liveHead = head
		}
		fs.watch(f, w)
		before, source := w.Manifest().Received, s.name()
		err = up.Run(ctx, w)
		after := w.Manifest().Received
		if h, ok := up.(interface{ relayedBytes() uint64 }); ok && h.relayedBytes() > 0 {
			// A live origin upstream that handed over to the designated
			// filler's relay (converge.go): those bytes are a peer's.
			relayed := min(h.relayedBytes(), after-before)
			fs.filled(f, s.name(), before, after-relayed)
			before = after - relayed
			source = "peer"
		}
		fs.filled(f, source, before, after)
		up.Close()
		if err == nil {
			return w, nil
		}
		failed = err
		if errors.Is(err, mesh.ErrRelayedSeal) {
			return w, err // its players played what the seal disowns: no next source
		}
		if ctx.Err() != nil {
			// Stopped on purpose (no readers left, the node stops): there
			// is no next source to try.
			log.Debug("fill stopped", "source", s.name(), "from", up.Manifest().Source, "why", context.Cause(ctx))
			return w, err
		}
		if last {
			continue
		}
		log.Warn("fill stopped; trying the next source", "source", s.name(), "from", up.Manifest().Source, "err", err)
		if w.Manifest().Live {
			// Between sources: refuse relays until the next one is chosen,
			// so two nodes that lost their source at once do not pick each
			// other.
			_ = w.SetBetweenSources()
		}
	}
	return w, ctx.Err()
}

// writerFor makes sure the recording up fills exists: it creates it (in the
// relay store when up is not cacheable) or names up as its source.
func (fs *Fills) writerFor(ctx context.Context, f *fill, s source, up Upstream, w *store.Writer, log *slog.Logger) (*store.Writer, error) {
	m := up.Manifest()
	if w != nil {
		_ = w.SetSource(m.Source, m.Via)
	} else {
		st := fs.cfg.Store
		if !up.Cacheable() || !st.Storing() || f.opts.relay {
			// Uncacheable, or no space to store (cache.min_free, the
			// quota), or the origin replaced a recording still being
			// played: relayed to readers without storing.
			st = fs.cfg.Relay
			_ = st.Delete(f.key) // a finished relay of the same stream still held by its last reader
		}
		fs.mu.Lock()
		f.live = m.Live
		fs.mu.Unlock()
		var err error
		if w, err = st.Create(m.Fresh(f.key)); err != nil {
			return nil, fmt.Errorf("create recording: %w", err)
		}
		f.setReady(st)
		if st == fs.cfg.Store && fs.cfg.Hooks.Created != nil { // live too: neighbours relay from this node
			fs.cfg.Hooks.Created(ctx, f.key)
		}
	}
	attrs := []any{"source", s.name(), "live", m.Live}
	if s.name() != store.SourceOrigin {
		attrs = append(attrs, "peer", m.Source)
		if m.Live {
			attrs = append(attrs, "hops", len(m.Via))
		}
	}
	log.Info("fill start", attrs...)
	return w, nil
}

// finish ends f's recording after its last source, and returns the result
// metrics count: "complete", "partial" or "failed".
func (fs *Fills) finish(ctx context.Context, f *fill, w *store.Writer, label string, err error, start time.Time, log *slog.Logger) string {
	if w == nil {
		// No source ever answered: nothing was stored.
		f.fail(err)
		if label == store.SourceOrigin {
			log.Warn("fill failed", "source", label, "err", err)
		}
		return "failed"
	}
	st := store.StatePartial
	switch {
	case err == nil && !w.Manifest().Live:
		st = store.StateComplete
	case err == nil:
		// The origin ended the live stream (RTCP BYE): relays end with it,
		// and what was live stays partial.
		if uerr := w.SetEnded(); uerr != nil {
			log.Warn("mark the live stream ended", "err", uerr)
		}
	}
	if ferr := w.Finish(st); ferr != nil {
		log.Error("finish recording", "err", ferr)
	}
	m := w.Manifest()
	lvl := slog.LevelInfo
	if err != nil && ctx.Err() != nil {
		// Stopped on purpose: its readers left, or the node stops.
		err = context.Cause(ctx)
	} else if err != nil {
		lvl = slog.LevelWarn
	}
	log.Log(ctx, lvl, "fill end", "source", label, "state", st, "bytes", m.Bytes,
		"packets", m.Packets, "duration", time.Since(start).Round(time.Millisecond), "err", err)
	// The manifest counts sealed segments only: what the last source
	// appended to the open segment is counted once it is sealed.
	if t := &f.tally; m.Received > t.start+t.counted && t.last != "" {
		fs.count(t.last, m.Received-t.start-t.counted)
	}
	switch m.State {
	case store.StateComplete:
		return "complete"
	case store.StatePartial, store.StateLive:
		return "partial"
	}
	return "failed"
}

// remove drops f from the registry once its goroutine is done with it.
func (fs *Fills) remove(f *fill) {
	fs.mu.Lock()
	delete(fs.m, f.key)
	if f.linger != nil {
		f.linger.Stop()
	}
	fs.mu.Unlock()
}

// dropRelayWhenIdle deletes a relayed (uncacheable) recording once its fill
// has ended and no reader reads it: nothing of it outlives its readers.
func (fs *Fills) dropRelayWhenIdle(f *fill) {
	fs.mu.Lock()
	idle := f.ended && f.readers == 0 && f.st == fs.cfg.Relay
	fs.mu.Unlock()
	if idle {
		_ = fs.cfg.Relay.Delete(f.key)
	}
}

// tally is what the fill counted of its bytes so far, by source.
type tally struct {
	start, counted uint64 // bytes the recording held at the first source, bytes counted since
	last           string // the last source
	started        bool
}

// filled counts the bytes source added to f's recording: its Received
// went from before to after.
func (fs *Fills) filled(f *fill, source string, before, after uint64) {
	t := &f.tally
	if !t.started {
		t.start, t.started = before, true
	}
	t.last = source
	if after > before {
		t.counted += after - before
		fs.count(source, after-before)
	}
}

func (fs *Fills) count(source string, bytes uint64) {
	if fs.cfg.Hooks.Filled != nil {
		fs.cfg.Hooks.Filled(source, bytes)
	}
}
