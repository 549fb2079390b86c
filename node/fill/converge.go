package fill

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/store"
)

// Converging after a partition (DESIGN.md §11, mesh/doc.go "Designated
// filler"). While a mesh is cut in two, each half has its own filler and
// its own origin session of a stream played on both sides. When the halves
// see each other again, the rule names one of the two fillers for the
// stream; the other, a node that pulls a live stream from the origin
// without being its designated filler any more, hands its recording over:
//
//  1. Every convergeEvery it checks the rule. When another member is the
//     filler, it asks it to fill (the filler protocol: it joins its own
//     fill, or starts one) and opens a relay of it from its live edge,
//     which it takes unless the relay comes through this node (then the
//     filler's stream is already this node's session: one session, as
//     wanted) or is more than mesh.live_max_hops from the origin. The
//     filler may itself relay the other half's origin-facing node, which
//     then keeps its session and this node closes its own.
//  2. It drops the relay's packets until a key frame whose capture time
//     (the origin's RTP↔NTP line, from sender reports) is at or after that
//     of the last packet its own session stored (within aheadSlack: the
//     relay is a hop behind), or any key frame once keyWaitMax passed or
//     when either capture time is unknown.
//  3. At that key frame it stops its origin session (its max_sessions slot
//     is free once the session is closed), and from that packet on stores
//     the relay's packets re-based to continue its own recording: tt,
//     packet numbers and each track's RTP timestamps shifted, as a
//     reconnected origin session is (store.Splice). Its players
//     and its own relays see one stream: no reconnect, no gap in RTP
//     sequence or time, decoding resumes at the key frame.
//  4. Should the relay fail, it goes back to the origin (one new session,
//     spliced the same way) and tries again later.
//
// An on-demand fill is not handed over: it runs to its end, after which
// the recording is complete and any further play is a hit; meanwhile the
// two halves' fills each hold one session until their fill ends.
const convergeEvery = time.Second

// keyWaitMax bounds how long a handover waits for a key frame that is at
// or ahead of this node's stream before it takes the next key frame.
const keyWaitMax = 10 * time.Second

// aheadSlack is how far a key frame of the filler's relay may have been
// captured before the last packet this node's own session stored and still
// count as "at" it: the relay is a mesh hop behind the origin, so the same
// key frame reaches this node's session a little earlier, and insisting on
// strictly ahead would wait a whole GOP or more. Players see at most this
// much of the stream again at the cut, from a key frame.
const aheadSlack = 250 * time.Millisecond

// handoverRetry is the wait before a handover is tried again after the
// filler relayed from elsewhere or its relay failed.
const handoverRetry = 10 * time.Second

// handover moves one live fill from its origin session to the designated
// filler's relay.
type handover struct {
	fs  *Fills
	key string
	w   *store.Writer
	log *slog.Logger

	// handing is closed by the watcher when it has a relay at a key frame,
	// and stopOrigin called (the origin session must stop); cut is closed
	// by Run once the origin session appends no more.
	handing    chan struct{}
	stopOrigin context.CancelFunc
	cut        chan struct{}
	handOnce   sync.Once
	cutOnce    sync.Once

	done   chan struct{} // closed when the watcher returns
	result error         // the relay's result after a handover; read after done
}

// watchHandover starts the watcher of a live fill that pulls from the
// origin; stopOrigin stops the fill's origin session. Stop the watcher by
// cancelling ctx and wait for it with done.
func (fs *Fills) watchHandover(ctx context.Context, key string, w *store.Writer, stopOrigin context.CancelFunc) *handover {
	h := &handover{fs: fs, key: key, w: w, log: fs.log.With("stream", key), stopOrigin: stopOrigin,
		handing: make(chan struct{}), cut: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.watch(ctx)
	}()
	return h
}

// watch checks the rule every convergeEvery until ctx ends or a handover
// ran (its result in h.result).
func (h *handover) watch(ctx context.Context) {
	t := time.NewTicker(convergeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fl := h.fs.cfg.Mesh.Filler(h.key, nil)
		if fl.Self || fl.ID == "" {
			continue
		}
		handed, err := h.try(ctx, fl.ID)
		if handed {
			h.result = err
			return
		}
		if err != nil && ctx.Err() == nil {
			// Debug: a filler without this origin, or one that relays from
			// this node, says so again every handoverRetry.
			h.log.Debug("not handing the live stream over to its designated filler", "filler", fl.ID, "err", err)
			if sleepCtx(ctx, handoverRetry) != nil {
				return
			}
		}
	}
}

// try asks filler for a relay and runs it into the recording; handed says
// the origin session was stopped for it (then err is the relay's result).
func (h *handover) try(ctx context.Context, filler string) (handed bool, err error) {
	msh := h.fs.cfg.Mesh
	reach := h.fs.cfg.FillerReach
	if reach <= 0 {
		reach = DefaultFillerReach
	}
	actx, cancel := context.WithTimeout(ctx, reach+fillerReadyMax)
	hold, err := msh.AskFiller(actx, filler, h.key, reach, false) // live: no ranges either way
	if err != nil {
		cancel()
		return false, err
	}
	defer hold.Close()
	pf, err := msh.OpenFill(actx, mesh.Provider{ID: filler}, h.key, mesh.FromLiveEdge)
	cancel()
	if err != nil {
		return false, err
	}
	defer pf.Close()
	if m := pf.Manifest(); !m.Live || slices.Contains(m.Via, msh.ID()) || len(m.Via)+1 > h.fs.cfg.LiveMaxHops {
		// It relays from this node (its own upstream: keep it), or sits too
		// deep.
		return false, fmt.Errorf("the filler's relay is %d hops from the origin (live_max_hops %d) or comes through this node",
			len(m.Via)+1, h.fs.cfg.LiveMaxHops)
	}
	sp := newRelaySplice(ctx, h, filler, pf.Manifest())
	pf.SetSplice(sp)
	h.log.Info("handing the live stream over to its designated filler at its next key frame", "filler", filler)
	err = pf.Run(ctx, h.w)
	if !sp.cutDone {
		if err == nil {
			err = errors.New("the filler's relay ended before a key frame")
		}
		return false, err
	}
	return true, err
}

// cutover stops the origin session at the relay's key frame: Run closes it
// and closes cut; false when ctx ended first.
func (h *handover) cutover(quit <-chan struct{}) bool {
	h.handOnce.Do(func() {
		close(h.handing)
		h.stopOrigin()
	})
	select {
	case <-h.cut:
		return true
	case <-quit:
		return false
	}
}

// isHanding says whether the watcher stopped the origin session for a
// handover.
func (h *handover) isHanding() bool {
	select {
	case <-h.handing:
		return true
	default:
		return false
	}
}

// originStopped is Run's word that the origin session appends no more.
func (h *handover) originStopped() { h.cutOnce.Do(func() { close(h.cut) }) }

// relaySplice re-bases the designated filler's relay onto the recording
// this node's origin session made (mesh.Splice): see "Converging after a
// partition" above, steps 2 and 3.
type relaySplice struct {
	rebase
	h       *handover
	quit    <-chan struct{} // the watcher stops
	filler  string
	started time.Time

	cutDone bool          // the origin session stopped: packets are kept from here
	behind  time.Duration // how far the last key frame looked at was captured before this node's stream
}

func newRelaySplice(ctx context.Context, h *handover, filler string, m store.Manifest) *relaySplice {
	return &relaySplice{rebase: newRebase(h.w, m, h.log), h: h, quit: ctx.Done(), filler: filler, started: time.Now()}
}

// Packet drops the relay's packets until a key frame at or ahead of this
// node's stream, cuts the origin session over there, then re-bases.
func (s *relaySplice) Packet(p *store.Packet) bool {
	if len(p.RTP) < 12 || int(p.Track) >= len(s.tracks) {
		return false
	}
	if !s.cutDone {
		if p.Flags&store.FlagKeyStart == 0 {
			return false
		}
		if !s.aheadOrLate(p) {
			s.h.log.Debug("the filler's key frame is behind this node's stream", "behind", s.behind.Round(time.Millisecond))
			return false
		}
		if !s.h.cutover(s.quit) {
			return false
		}
		s.base()
	}
	s.packet(p)
	return true
}

// Clock keeps the filler's mapping; once cut over, it is passed on in the
// re-based timestamps.
func (s *relaySplice) Clock(track uint8, c store.Clock) (store.Clock, bool) { return s.clock(track, c) }

// aheadOrLate: key frame p of the relay was captured at or after the last
// packet this node stored of its track, or the capture times are unknown,
// or the handover waited keyWaitMax.
func (s *relaySplice) aheadOrLate(p *store.Packet) bool {
	if time.Since(s.started) > keyWaitMax {
		return true
	}
	theirs, ok := captureTime(s.clocks[p.Track], s.tracks[p.Track].ClockRate, binary.BigEndian.Uint32(p.RTP[4:8]))
	if !ok {
		return true
	}
	last, _, ok := s.h.w.TrackTail(p.Track)
	if !ok || len(last.RTP) < 12 {
		return true
	}
	m := s.h.w.Manifest()
	if int(p.Track) >= len(m.Tracks) {
		return true
	}
	ours, ok := captureTime(m.Tracks[p.Track].Clock, m.Tracks[p.Track].ClockRate, binary.BigEndian.Uint32(last.RTP[4:8]))
	if !ok {
		return true
	}
	s.behind = ours.Sub(theirs)
	return s.behind <= aheadSlack
}

// captureTime is when the packet of RTP timestamp ts was captured, by the
// track's mapping c; false when there is none.
func captureTime(c store.Clock, clockRate uint32, ts uint32) (time.Time, bool) {
	if c.IsZero() || clockRate == 0 {
		return time.Time{}, false
	}
	return c.At(ts, clockRate), true
}

// base starts re-basing the relay onto where this node's recording stops,
// at the first kept packet (store.Splice: its tt continues the recording's
// last by the wall-clock time since that arrived, its number follows the
// last, each track's timestamps continue).
func (s *relaySplice) base() {
	w := s.h.w
	s.start()
	s.cutDone = true
	if err := w.SetSource(s.filler, []string{s.filler}); err != nil {
		s.h.log.Warn("name the designated filler as the live stream's source", "err", err)
	}
	s.h.log.Info("live stream handed over to its designated filler", "filler", s.filler, "gap", s.sp.Gap(time.Now()).Round(time.Millisecond),
		"key_frame_behind", s.behind.Round(time.Millisecond), "waited", time.Since(s.started).Round(time.Millisecond))
}
