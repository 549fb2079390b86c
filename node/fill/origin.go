package fill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/store"
)

// Backoff between reconnection attempts to a lost live origin: the first
// wait, doubled after each failed attempt up to the last, each jittered
// down by up to half.
const (
	reconnectFirst = 250 * time.Millisecond
	reconnectMax   = 5 * time.Second
)

// originSource is a fill's origin as a source: one upstream, the last.
type originSource struct {
	fs     *Fills
	f      *fill
	opened bool
}

func (*originSource) name() string { return store.SourceOrigin }

func (s *originSource) next(ctx context.Context, _ *store.Writer) (Upstream, error) {
	if s.opened {
		return nil, nil
	}
	s.opened = true
	var budget *Budget
	if s.fs.cfg.Budget != nil {
		budget = s.fs.cfg.Budget(s.f.key)
	}
	release, err := budget.acquire(ctx)
	if err != nil {
		return nil, err
	}
	req := s.f.origin // its URL and policy
	if s.fs.scalesClock(req.URL) {
		req.Speed = 0
	}
	req.Timeout = s.fs.cfg.OriginTimeout
	req.Logger = s.fs.log
	req.AskMetaInfo = true
	req.OnClassify = func(live bool) {
		s.fs.mu.Lock()
		s.f.live = live
		s.fs.mu.Unlock()
	}
	o, err := s.open(ctx, req)
	if err != nil {
		release()
		return nil, err
	}
	return &originUpstream{o: o, fs: s.fs, f: s.f, url: req.URL, req: req, pol: s.f.opts.pol, window: s.fs.cfg.LiveReconnect,
		log: s.fs.log.With("stream", s.f.key), release: release, budget: budget}, nil
}

// busyAttempts is how many times a fill asks an origin for its session
// while the origin says it is at its session limit (open).
const busyAttempts = 4

// open opens the fill's origin session, trying again with the reconnection
// backoff (reconnectBackoff: 250 ms, doubling, jittered; at most 1.75 s of
// waits in all) while the origin says it is at its session limit. The
// limit is often a session about to end: a designated filler that stopped
// closed its own session a moment ago, but the origin has not yet let it
// go when the next filler's SETUP arrives (a camera that takes one
// session, max_sessions 1). Any other error is returned at once.
func (s *originSource) open(ctx context.Context, req rtspedge.OriginRequest) (*rtspedge.OriginSession, error) {
	for attempt := 1; ; attempt++ {
		o, err := rtspedge.OpenOrigin(ctx, req)
		if err == nil || attempt == busyAttempts || !originBusy(err) {
			return o, err
		}
		wait := reconnectBackoff(attempt - 1)
		s.fs.log.Info("origin at its session limit; trying again", "stream", s.f.key, "attempt", attempt, "wait", wait.Round(time.Millisecond), "err", err)
		if sleepCtx(ctx, wait) != nil {
			return nil, err
		}
	}
}

// originBusy says whether err is an origin's answer that it takes no more
// sessions now: 453 Not Enough Bandwidth or 503 Service Unavailable.
func originBusy(err error) bool {
	var status *rtspedge.OriginStatusError
	return errors.As(err, &status) && (status.Code == 453 || status.Code == 503)
}

// originUpstream is a session with the origin; a live one that is lost is
// reopened with backoff.
type originUpstream struct {
	o      *rtspedge.OriginSession // the current session; Run swaps in a reopened one
	fs     *Fills
	url    string // the origin URL (credentials included: never logged)
	req    rtspedge.OriginRequest
	pol    Policy        // the origin's freshness policy: whether to store
	window time.Duration // cache.live_reconnect
	log    *slog.Logger
	// release frees the origin's max_sessions slot, which the upstream
	// holds through its reconnections (each closes the session before it).
	release func()
	budget  *Budget
	f       *fill  // for a live stream's handover (converge.go)
	relayed uint64 // bytes the designated filler's relay stored after handovers
}

// relayedBytes is what the recording got from the designated filler's
// relay after a handover, not from the origin.
func (u *originUpstream) relayedBytes() uint64 { return u.relayed }

// Manifest is the origin's, with the origin as Source.
func (u *originUpstream) Manifest() store.Manifest {
	m := u.o.Manifest()
	m.Source, m.Via = store.SourceOrigin, nil
	return m
}

func (u *originUpstream) Cacheable() bool { return u.pol.storable(u.o.Cacheable) }

// Close closes the current session (Run closes the ones before it).
func (u *originUpstream) Close() {
	u.o.Close()
	u.release()
}

// Run plays the origin into w until the stream ends (runOrigin). A live
// stream in a mesh is handed over to its designated filler when this node
// is not it any more (a healed partition, converge.go): the origin session
// closes and the filler's relay continues the recording; should the relay
// fail, a new origin session continues it.
func (u *originUpstream) Run(ctx context.Context, w *store.Writer) error {
	for {
		if u.fs.cfg.Mesh == nil || !w.Manifest().Live || u.f.st != u.fs.cfg.Store {
			// No mesh, on demand, or relayed unstored (no-cache: peers
			// never hold it): nothing to hand over.
			return u.runOrigin(ctx, w)
		}
		octx, stopOrigin := context.WithCancel(ctx)
		wctx, stopWatch := context.WithCancel(ctx)
		h := u.fs.watchHandover(wctx, u.f.key, w, stopOrigin)
		err := u.runOrigin(octx, w)
		if !h.isHanding() {
			stopWatch()
			<-h.done
			stopOrigin()
			return err
		}
		// Stopped for the handover: the session closes before the relay
		// appends, and its max_sessions slot is free.
		u.o.Close()
		u.release()
		h.originStopped()
		cutAt := w.Manifest().Received
		<-h.done
		u.relayed += w.Manifest().Received - cutAt
		stopWatch()
		stopOrigin()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if h.result == nil {
			return nil // the origin ended the stream
		}
		u.log.Warn("the designated filler's relay failed; back to the origin", "err", h.result)
		_ = w.SetSource(store.SourceOrigin, nil)
		release, err := u.budget.acquire(ctx)
		if err != nil {
			return err
		}
		o, err := u.o.Reopen(ctx)
		if err != nil {
			release()
			return err
		}
		u.o, u.release = o, release
	}
}

// maxDropResumes bounds the sessions a fill opens again after an origin
// dropped packets of an on-demand stream it sent faster than real time
// (rtspedge.ErrOriginDropped), each at half the speed of the one before:
// from Speed 64 the sixth plays at real time, where a gap is stored as it
// comes. A fill that still ends so after that many ends partial, without
// the hole a stored gap would be; its next play resumes it.
const maxDropResumes = 8

// runOrigin plays the origin into w until the stream ends. An on-demand
// session faster than real time that loses packets (the origin dropped
// them) ends before the gap and a slower one resumes after what was
// stored, up to maxDropResumes times. The origin session of
// a live stream that is lost (the connection drops, or the origin sends no
// media for origin_timeout) is reopened with backoff for up to
// cache.live_reconnect; readers meanwhile wait at the tail of the
// recording, and the new session's packets continue it without a jump
// (rtspedge re-bases them). It returns nil at a clean end (RTCP BYE, a VOD
// stream's end), ctx's error, or the error of the last session when the
// origin did not come back in time: the fill then ends the recording and
// its readers get a clean end.
func (u *originUpstream) runOrigin(ctx context.Context, w *store.Writer) error {
	var (
		lostAt   time.Time // when the current outage began; zero while playing
		attempts int       // reconnection attempts in this outage
		drops    int       // sessions that ended at packets the origin dropped
	)
	for {
		_, pnBefore, hadBefore := w.Last()
		err := u.pull(ctx, w)
		if errors.Is(err, rtspedge.ErrOriginDropped) && ctx.Err() == nil && drops < maxDropResumes {
			// What came before the gap is stored: a session at half the
			// speed resumes after it (Reopen), so the recording has no hole.
			drops++
			u.log.Warn("origin dropped packets; resuming after the last stored packet, slower", "err", err, "resume", drops)
			next, rerr := u.o.Reopen(ctx)
			if rerr != nil {
				return rerr
			}
			u.o = next // Run closes it
			continue
		}
		if errors.Is(err, rtspedge.ErrSpeedScalesClock) && ctx.Err() == nil {
			// Nothing of that session was stored: the next asks for no
			// Speed, and so will this origin's next fills.
			u.log.Warn("origin granted Speed but slowed its RTP clock as much; filling at real time", "err", err)
			u.fs.noteScalesClock(u.url)
			next, rerr := u.o.Reopen(ctx)
			if rerr != nil {
				return rerr
			}
			u.o = next // Run closes it
			continue
		}
		if _, pn, ok := w.Last(); ok && (!hadBefore || pn != pnBefore) {
			lostAt, attempts = time.Time{}, 0 // it played: a new outage starts now
		}
		if !w.Manifest().Live || u.window <= 0 || !originLost(ctx, err) {
			return err
		}
		if lostAt.IsZero() {
			lostAt = time.Now()
			u.log.Warn("live origin lost; reconnecting", "err", err, "for", u.window)
		}
		next, tried, rerr := u.reopen(ctx, w, lostAt.Add(u.window), attempts)
		attempts = tried
		if next == nil {
			if rerr != nil {
				err = rerr
			}
			if ctx.Err() == nil {
				u.log.Warn("live origin did not come back; ending the stream", "attempts", attempts,
					"after", time.Since(lostAt).Round(time.Millisecond), "err", err)
			}
			return err
		}
		u.log.Info("live origin reconnected", "attempts", attempts, "after", time.Since(lostAt).Round(time.Millisecond))
		u.o = next // Run closes it
	}
}

// pull plays the current session into w: as ranges at once
// (rtspedge.PullRanges, each at the Speed the origin granted the first)
// while nobody watches, when the fill may: a VOD stream stored here, with
// the origin's range_parallelism above 1. Each session a range adds holds
// a slot of the origin's max_sessions, and opens only when one is free.
func (u *originUpstream) pull(ctx context.Context, w *store.Writer) error {
	if u.f.ranges < 2 || w.Manifest().Live || u.f.st != u.fs.cfg.Store {
		return u.o.Run(ctx, w)
	}
	return rtspedge.PullRanges(ctx, u.o, w, rtspedge.RangePull{
		Parallelism: u.f.ranges,
		Logger:      u.log,
		Unwatched:   func() bool { return u.fs.unwatched(u.f) },
		Open: func(ctx context.Context) (*rtspedge.OriginSession, func(), error) {
			release, ok := u.budget.tryAcquire()
			if !ok {
				return nil, nil, nil
			}
			o, err := rtspedge.OpenOrigin(ctx, u.req)
			if err != nil {
				release()
				return nil, nil, err
			}
			return o, release, nil
		},
	})
}

// unwatched says whether nobody plays f at real time (a prefetch's hold
// is no player).
func (fs *Fills) unwatched(f *fill) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return f.watchers == 0
}

// reopen reopens the origin session, with backoff, until one opens with the
// recording's tracks or deadline passes. attempts counts the attempts of
// this outage so far; it returns the new count, and the error of the last
// attempt when no session opened (nil if none was made).
func (u *originUpstream) reopen(ctx context.Context, w *store.Writer, deadline time.Time, attempts int) (*rtspedge.OriginSession, int, error) {
	var err error
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, attempts, err
		}
		wait := min(reconnectBackoff(attempts), left)
		if sleepCtx(ctx, wait) != nil {
			return nil, attempts, ctx.Err()
		}
		attempts++
		u.log.Info("reconnecting to live origin", "attempt", attempts, "waited", wait.Round(time.Millisecond))
		var o *rtspedge.OriginSession
		o, err = u.o.Reopen(ctx)
		switch {
		case err != nil:
			if !originLost(ctx, err) {
				return nil, attempts, err
			}
			u.log.Info("live origin reconnection failed", "attempt", attempts, "err", err)
		case !sameTracks(o.Manifest().Tracks, w.Manifest().Tracks):
			o.Close()
			return nil, attempts, fmt.Errorf("live origin came back with other tracks: %w", rtspedge.ErrMalformedSDP)
		default:
			return o, attempts, nil
		}
	}
}

// reconnectBackoff is the wait before attempt number attempts+1 of an outage.
func reconnectBackoff(attempts int) time.Duration {
	d := reconnectMax
	if attempts < 8 {
		d = min(reconnectFirst<<attempts, reconnectMax)
	}
	return d/2 + rand.N(d/2+1)
}

// originLost says whether err ended an origin session in a way that a new
// session may mend: the origin failed, went silent, or answered with an
// error status (a camera that restarts is "not found" for a while). The
// context ending, a clean end, or a store error are final.
func originLost(ctx context.Context, err error) bool {
	var status *rtspedge.OriginStatusError
	return err != nil && ctx.Err() == nil &&
		(errors.Is(err, rtspedge.ErrOriginUnavailable) || errors.As(err, &status))
}

// sameTracks: a reopened session may continue a recording only if its
// tracks are the recording's.
func sameTracks(a, b []store.Track) bool {
	return slices.EqualFunc(a, b, func(x, y store.Track) bool {
		return x.Media == y.Media && x.PayloadType == y.PayloadType && x.ClockRate == y.ClockRate && x.Codec == y.Codec
	})
}

// originHost is what scalesClock remembers an origin by: its URL's host
// and port, without credentials.
func originHost(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// noteScalesClock remembers that the origin of rawURL slows its RTP clock
// with the Speed it grants (rtspedge.ErrSpeedScalesClock), for as long as
// the node runs.
func (fs *Fills) noteScalesClock(rawURL string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.speedless == nil {
		fs.speedless = map[string]bool{}
	}
	fs.speedless[originHost(rawURL)] = true
}

// scalesClock says whether a fill from rawURL's origin found that it slows
// its RTP clock with Speed: its fills then ask for none.
func (fs *Fills) scalesClock(rawURL string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.speedless[originHost(rawURL)]
}
