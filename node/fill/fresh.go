package fill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/store"
)

// Policy is an origin's freshness policy (DESIGN.md §10): how long a
// recording of it stays fresh, and what to do when it is stale.
type Policy struct {
	// MaxAge is how long a recording stays fresh after it was fetched (or
	// last revalidated) when the origin's headers do not say.
	MaxAge time.Duration
	// UseOriginHeaders: the origin's Cache-Control (max-age, no-cache,
	// no-store, private, must-revalidate) and Expires decide over MaxAge.
	UseOriginHeaders bool
	// Override replaces the origin's Cache-Control when not empty.
	Override string
	// StaleIfError serves a stale recording, with a warning, when the
	// origin cannot revalidate it.
	StaleIfError bool
}

// DefaultPolicy is the policy of an origin nothing was configured for.
func DefaultPolicy() Policy {
	return Policy{MaxAge: 10 * time.Minute, UseOriginHeaders: true, StaleIfError: true}
}

// directives are the Cache-Control directives the policy goes by.
type directives struct {
	noCache, noStore, private, mustRevalidate bool
	maxAge                                    time.Duration
	hasMaxAge                                 bool
}

func parseCacheControl(v string) directives {
	var d directives
	for part := range strings.SplitSeq(v, ",") {
		name, arg, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-cache":
			d.noCache = true
		case "no-store":
			d.noStore = true
		case "private":
			d.private = true
		case "must-revalidate":
			d.mustRevalidate = true
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(arg), `"`), 10, 64); err == nil && n >= 0 {
				d.maxAge, d.hasMaxAge = time.Duration(min(n, 1<<32))*time.Second, true
			}
		}
	}
	return d
}

// cacheControl is the Cache-Control the policy reads for a recording whose
// origin said origin.
func (p Policy) cacheControl(origin string) directives {
	switch {
	case p.Override != "":
		return parseCacheControl(p.Override)
	case p.UseOriginHeaders:
		return parseCacheControl(origin)
	}
	return directives{}
}

// storable says whether a stream may be stored: originSays is the origin
// session's own answer (false for no-cache, no-store or private on DESCRIBE
// or SETUP). RTSP's no-cache means "do not cache" (RFC 2326 §12.8).
func (p Policy) storable(originSays func() bool) bool {
	switch {
	case p.Override != "":
		d := parseCacheControl(p.Override)
		return !d.noCache && !d.noStore && !d.private
	case p.UseOriginHeaders:
		return originSays()
	}
	return true
}

// Lifetime is how long a recording with freshness f stays fresh from
// f.FetchedAt: max-age, else Expires (when the origin's headers count),
// else MaxAge.
func (p Policy) Lifetime(f store.Freshness) time.Duration {
	d := p.cacheControl(f.CacheControl)
	switch {
	case d.hasMaxAge:
		return d.maxAge
	case p.Override == "" && p.UseOriginHeaders && f.Expires != "":
		t, err := http.ParseTime(f.Expires)
		if err != nil {
			return 0 // an invalid Expires is in the past (RFC 9111 §5.3)
		}
		return max(0, t.Sub(f.FetchedAt))
	}
	return p.MaxAge
}

// FreshUntil is when a recording with freshness f becomes stale.
func (p Policy) FreshUntil(f store.Freshness) time.Time { return f.FetchedAt.Add(p.Lifetime(f)) }

// maxSkew is how far in the future a fetch time may lie (a neighbour's
// clock ahead of this node's) and still count; beyond it the recording is
// stale.
const maxSkew = time.Minute

// Fresh reports whether a recording with freshness f is fresh at now. A
// fetch time from the future beyond maxSkew (a wrong clock, or a peer that
// lies) is stale.
func (p Policy) Fresh(f store.Freshness, now time.Time) bool {
	return now.Before(p.FreshUntil(f)) && !f.FetchedAt.After(now.Add(maxSkew))
}

// mayServeStale: the origin did not forbid serving the recording stale
// (must-revalidate) and the policy allows it when the origin is down.
func (p Policy) mayServeStale(f store.Freshness) bool {
	return p.StaleIfError && !p.cacheControl(f.CacheControl).mustRevalidate
}

// openOpts are what a freshness check asks of a fill.
type openOpts struct {
	pol        Policy
	want       []byte // the description a recording must have (the origin changed it); nil: any
	wantMod    string // and its Last-Modified, when the origin gave one
	relay      bool   // relay without storing: the replaced recording is still played
	cachedOnly bool   // only-if-cached: peers only, never the origin
}

// accepts says whether a stored recording m may serve the request.
func (o openOpts) accepts(m store.Manifest) bool {
	if o.want == nil {
		return true
	}
	return rtspedge.SameDescription(m.SDP, o.want) && (o.wantMod == "" || m.Freshness.LastModified == o.wantMod)
}

// Warning is the Warning header the player's DESCRIBE answer carries ("" if
// none): a recording served stale says so (rtspedge.Warner).
func (r *Recording) Warning() string { return r.warning }

// FreshStats counts revalidations.
type FreshStats struct {
	Revalidations uint64 // stale recordings revalidated with their origin
	NotModified   uint64 // answered 304 Not Modified
	Unchanged     uint64 // answered with the same description
	Changed       uint64 // answered with a new description: a new recording
	Stale         uint64 // served stale: the origin could not be reached
	Failed        uint64 // not served: the origin could not be reached, stale not allowed
}

type freshCounters struct {
	revalidations, notModified, unchanged, changed, stale, failed atomic.Uint64

	mu           sync.Mutex
	revalidating map[string]int      // keys being revalidated now
	turns        map[string]*keyTurn // Open's revalidations, one key at a time
}

// keyTurn serializes the revalidations of one key; n counts its holders
// and waiters.
type keyTurn struct {
	mu sync.Mutex
	n  int
}

// revalidationTurn waits until no other Open revalidates key, and returns
// the function that ends this one's turn. Two players (or a player and a
// neighbour's filler request) that find the same stale recording at once
// would otherwise both ask the origin, both find it changed, and the second
// would drop the new recording the first had just started to fill.
func (fs *Fills) revalidationTurn(key string) (done func()) {
	c := &fs.fresh
	c.mu.Lock()
	if c.turns == nil {
		c.turns = map[string]*keyTurn{}
	}
	kt := c.turns[key]
	if kt == nil {
		kt = &keyTurn{}
		c.turns[key] = kt
	}
	kt.n++
	c.mu.Unlock()
	kt.mu.Lock()
	return func() {
		kt.mu.Unlock()
		c.mu.Lock()
		if kt.n--; kt.n == 0 {
			delete(c.turns, key)
		}
		c.mu.Unlock()
	}
}

// FreshStats returns the revalidation counts so far.
func (fs *Fills) FreshStats() FreshStats {
	c := &fs.fresh
	return FreshStats{
		Revalidations: c.revalidations.Load(), NotModified: c.notModified.Load(),
		Unchanged: c.unchanged.Load(), Changed: c.changed.Load(),
		Stale: c.stale.Load(), Failed: c.failed.Load(),
	}
}

// Revalidating reports whether key is being revalidated with its origin now.
func (fs *Fills) Revalidating(key string) bool {
	c := &fs.fresh
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revalidating[key] > 0
}

func (fs *Fills) markRevalidating(key string, d int) {
	c := &fs.fresh
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revalidating == nil {
		c.revalidating = make(map[string]int)
	}
	if c.revalidating[key] += d; c.revalidating[key] <= 0 {
		delete(c.revalidating, key)
	}
}

// Open resolves req.Key to a recording (see open) under req.Policy: a
// stored recording that is stale is first revalidated with the origin
// (DESIGN.md §10). Unchanged, it is
// served and fresh again; changed, a new recording replaces it (never a
// splice: while the old one is still played, this player gets the new one
// relayed without storing); the origin unreachable, it is served stale with
// a Warning when the policy allows, else the error says so (503).
func (fs *Fills) Open(ctx context.Context, req Request) (*Recording, error) {
	o := openOpts{pol: DefaultPolicy(), cachedOnly: req.OnlyIfCached}
	if req.Policy != nil {
		o.pol = *req.Policy
	}
	m, err := fs.cfg.Store.Manifest(req.Key)
	if err != nil || m.State != store.StateComplete || o.pol.Fresh(m.Freshness, time.Now()) {
		return fs.open(ctx, req, o)
	}
	if req.OnlyIfCached {
		// Never the origin: what this node holds, said to be stale.
		return fs.openStale(ctx, req, o)
	}
	done := fs.revalidationTurn(req.Key)
	defer done()
	// Another Open may have revalidated the recording while this one
	// waited its turn: it is fresh again, or replaced by one being filled.
	m, err = fs.cfg.Store.Manifest(req.Key)
	if err != nil || m.State != store.StateComplete || o.pol.Fresh(m.Freshness, time.Now()) {
		return fs.open(ctx, req, o)
	}
	return fs.revalidate(ctx, req, m, o)
}

// openStale opens the stored recording with the stale warning.
func (fs *Fills) openStale(ctx context.Context, req Request, o openOpts) (*Recording, error) {
	rec, err := fs.open(ctx, req, o)
	if err == nil && rec.served == ServedLocal {
		rec.warning = rtspedge.StaleWarning
	}
	return rec, err
}

// verdict is what a revalidation found.
type verdict int

const (
	verdictUnchanged   verdict = iota // 304, or the same description: fresh again
	verdictChanged                    // a new description: a new recording
	verdictUnreachable                // the origin could not be reached
	verdictFailed                     // the origin refused (4xx, policy)
)

// ask revalidates the stale recording m of key with its origin, and counts
// what it found. For verdictUnchanged, rv.Freshness is m's new freshness
// (Last-Modified kept when the answer had none).
func (fs *Fills) ask(ctx context.Context, key string, origin rtspedge.OriginRequest, m store.Manifest) (verdict, rtspedge.Revalidation, error) {
	log := fs.log.With("stream", key)
	c := &fs.fresh
	c.revalidations.Add(1)
	fs.markRevalidating(key, 1)
	start := time.Now()
	origin.Timeout, origin.Logger = fs.cfg.OriginTimeout, fs.log
	rv, err := rtspedge.Revalidate(ctx, origin, m.Freshness.LastModified)
	fs.markRevalidating(key, -1)
	took := time.Since(start).Round(time.Microsecond)
	switch {
	case errors.Is(err, rtspedge.ErrOriginUnavailable):
		return verdictUnreachable, rv, err
	case err != nil:
		return verdictFailed, rv, err
	case unchanged(rv, m):
		if rv.NotModified {
			c.notModified.Add(1)
		} else {
			c.unchanged.Add(1)
		}
		if rv.Freshness.LastModified == "" {
			rv.Freshness.LastModified = m.Freshness.LastModified
		}
		log.Info("revalidated: unchanged", "not_modified", rv.NotModified, "took", took, "source", m.Source)
		return verdictUnchanged, rv, nil
	}
	c.changed.Add(1)
	log.Info("revalidated: the origin changed the stream", "took", took, "source", m.Source)
	log.Debug("changed description", "stored", string(m.SDP), "origin", string(rv.SDP),
		"stored_last_modified", m.Freshness.LastModified, "origin_last_modified", rv.Freshness.LastModified)
	return verdictChanged, rv, nil
}

// revalidate asks the origin about the stale recording m, then opens what
// the answer calls for.
func (fs *Fills) revalidate(ctx context.Context, req Request, m store.Manifest, o openOpts) (*Recording, error) {
	log := fs.log.With("stream", req.Key)
	c := &fs.fresh
	v, rv, err := fs.ask(ctx, req.Key, req.Origin, m)
	switch v {
	case verdictUnreachable, verdictFailed:
		if v == verdictUnreachable && o.pol.mayServeStale(m.Freshness) {
			c.stale.Add(1)
			log.Warn("origin unreachable; serving the stale recording", "fetched_at", m.Freshness.FetchedAt,
				"stale_since", o.pol.FreshUntil(m.Freshness), "err", err)
			return fs.openStale(ctx, req, o)
		}
		c.failed.Add(1)
		return nil, fmt.Errorf("revalidate the stale recording of %s: %w", req.Key, err)
	case verdictUnchanged:
		if err := fs.cfg.Store.SetFreshness(req.Key, rv.Freshness); err != nil {
			log.Warn("keep the revalidated freshness", "err", err)
		}
		return fs.open(ctx, req, o)
	}
	o.want, o.wantMod = rv.SDP, rv.Freshness.LastModified
	if err := fs.cfg.Store.DeleteIdle(req.Key); err != nil {
		log.Info("the old recording is still played; relaying the new one", "err", err)
		o.relay = true
	} else {
		log.Info("the old recording is dropped; filling the new one")
	}
	return fs.open(ctx, req, o)
}

// adopt says whether a peer's VOD copy m may fill f: fresh by f's policy,
// or stale and found unchanged by the origin (renewed is then its new
// freshness), or stale with the origin unreachable and stale allowed. A
// copy the origin has changed since is refused, and so is every copy
// without the origin's new description from then on.
func (p *peers) adopt(ctx context.Context, m store.Manifest) (ok bool, renewed *store.Freshness) {
	o := p.f.opts
	if p.want != nil {
		o.want, o.wantMod = p.want, p.wantMod
	}
	switch {
	case !o.accepts(m):
		return false, nil
	case o.pol.Fresh(m.Freshness, time.Now()), o.cachedOnly:
		return true, nil // only-if-cached: never the origin
	}
	v, rv, err := p.fs.ask(ctx, p.f.key, p.f.origin, m)
	switch v {
	case verdictUnchanged:
		return true, &rv.Freshness
	case verdictChanged:
		p.want, p.wantMod = rv.SDP, rv.Freshness.LastModified
	case verdictUnreachable:
		return o.pol.mayServeStale(m.Freshness), nil
	default:
		p.fs.log.Info("provider's stale copy not revalidated", "stream", p.f.key, "peer", m.Source, "err", err)
	}
	return false, nil
}

// unchanged says whether the origin's answer rv describes the stored
// recording m: a 304, or the same Last-Modified (when both have one; an
// origin that ignores If-Modified-Since answers 200 with it) and the same
// description (its o= version, then its body).
func unchanged(rv rtspedge.Revalidation, m store.Manifest) bool {
	if rv.NotModified {
		return true
	}
	was, now := m.Freshness.LastModified, rv.Freshness.LastModified
	if was != "" && now != "" && was != now {
		return false
	}
	return rtspedge.SameDescription(rv.SDP, m.SDP)
}
