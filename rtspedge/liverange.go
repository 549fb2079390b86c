package rtspedge

import (
	"math"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
)

// liveEdge is the position of a live PLAY at the latest key frame: a reader
// opened there lands on it.
const liveEdge time.Duration = math.MaxInt64

// clockFormat is RFC 2326's utc-time with milliseconds.
const clockFormat = "20060102T150405.000Z"

// liveRange is where a live PLAY's Range points: the live edge, T after
// the start of the stored window (npt), or a wall-clock time (clock).
type liveRange struct {
	given bool   // the request had a Range
	raw   string // the Range, for the log
	edge  bool   // npt=now- or a Range that cannot be read: the live edge
	clock bool
	npt   time.Duration // when !clock
	at    time.Time     // when clock
}

// parseLiveRange reads the Range of a live PLAY.
func parseLiveRange(v base.HeaderValue) liveRange {
	if len(v) == 0 {
		return liveRange{}
	}
	lr := liveRange{given: true, edge: true, raw: v[0]}
	var r headers.Range
	if err := r.Unmarshal(v); err != nil {
		return lr // npt=now- among others
	}
	switch rv := r.Value.(type) {
	case *headers.RangeNPT:
		lr.edge, lr.npt = false, max(rv.Start, 0)
	case *headers.RangeUTC:
		lr.edge, lr.clock, lr.at = false, true, rv.Start
	}
	return lr
}

// unplaced: the PLAY names no position (no Range, or npt=0, which ffmpeg
// sends on its first PLAY and gortsplib clients on every PLAY).
func (lr liveRange) unplaced() bool {
	return !lr.given || !lr.edge && !lr.clock && lr.npt == 0
}

// from is the tt a PLAY to lr reads from, given the window first..last
// whose last packet arrived at now: window start + npt, or the packet whose
// time was lr.at (last is now). A time before the window is the window
// start; a time past its end (or no time) is the live edge.
func (lr liveRange) from(first, last time.Duration, now time.Time) time.Duration {
	var tt time.Duration
	switch {
	case lr.clock:
		if !lr.at.Before(now) {
			return liveEdge
		}
		tt = max(last-now.Sub(lr.at), first)
	case !lr.edge && lr.npt > 0:
		tt = first + lr.npt
	default:
		return liveEdge
	}
	if tt >= last {
		return liveEdge
	}
	return tt
}

// positionLive resumes or positions a live play (see the package doc) and
// returns the Range of the answer, in the unit the request used.
func (p *player) positionLive(lr liveRange, wasPaused bool) (string, *base.Response) {
	first, last, err := p.rec.Span()
	now := time.Now()
	from := liveEdge
	if err == nil {
		from = lr.from(first, last, now)
	}
	// A PLAY that names no position resumes a paused play (and continues a
	// running one); one at the paused position resumes too.
	resume := p.played && (!lr.given || wasPaused && lr.unplaced() ||
		from != liveEdge && absDur(from-p.position()) <= resumeTolerance)
	if resume && err == nil && p.position() < first {
		p.log.Info("paused past the live window; resuming at the live edge",
			"paused_at", p.position(), "window_start", first)
		resume, from = false, liveEdge
	}
	p.log.Debug("live play", "range", lr.raw, "resume", resume, "live_edge", from == liveEdge, "from", from,
		"window_start", first, "window_end", last)
	if resume {
		p.resume()
	} else if res := p.seek(p.s.ctx, from); res != nil {
		return "", res
	}
	if err != nil {
		// Empty at the request: the seek waited for the first packets.
		first, last, err = p.rec.Span()
		now = time.Now()
	}
	if err != nil {
		return "npt=0.000-", nil
	}
	if lr.clock {
		return "clock=" + now.Add(p.sNPT-last).UTC().Format(clockFormat) + "-", nil
	}
	return "npt=" + formatNPT(max(p.sNPT-first, 0)) + "-", nil
}
