package fill

import (
	"log/slog"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/store"
)

// rebase re-bases a live relay's packets and clocks onto the recording w
// holds (store.Splice: tt, packet numbers and each track's RTP timestamps
// continue where w stops), once start is called. The relay's recording
// came from another origin session than w's, so its numbers and times
// start elsewhere. Its methods run on the relay's Run goroutine.
type rebase struct {
	w      *store.Writer
	log    *slog.Logger
	tracks []store.Track
	clocks []store.Clock // the relay's RTP↔NTP mapping per track, in its timestamps
	sp     *store.Splice // nil until start
}

func newRebase(w *store.Writer, m store.Manifest, log *slog.Logger) rebase {
	r := rebase{w: w, log: log, tracks: m.Tracks, clocks: make([]store.Clock, len(m.Tracks))}
	for i, t := range m.Tracks {
		r.clocks[i] = t.Clock
	}
	return r
}

// start re-bases from the next packet on, onto where w stops now.
func (r *rebase) start() {
	rates := make([]uint32, len(r.tracks))
	for i, t := range r.tracks {
		rates[i] = t.ClockRate
	}
	r.sp = store.NewSplice(store.TailOf(r.w, len(r.tracks)), rates)
}

// packet re-bases p (started); at a track's first packet it stores the
// relay's capture-time line in the re-based timestamps (the relay sends
// it again only when it changes).
func (r *rebase) packet(p *store.Packet) {
	_, seen := r.sp.Offset(p.Track)
	r.sp.Rebase(p, true, time.Now())
	if off, _ := r.sp.Offset(p.Track); !seen {
		if c := r.clocks[p.Track]; !c.IsZero() {
			c.RTP += off
			if err := r.w.SetClock(p.Track, c); err != nil {
				r.log.Debug("keep the relay's clock", "track", p.Track, "err", err)
			}
		}
	}
}

// clock keeps the relay's mapping of track; once a packet of the track is
// re-based, it is passed on in the re-based timestamps.
func (r *rebase) clock(track uint8, c store.Clock) (store.Clock, bool) {
	if int(track) >= len(r.clocks) {
		return c, false
	}
	r.clocks[track] = c
	if r.sp == nil {
		return c, false
	}
	off, ok := r.sp.Offset(track)
	if !ok {
		return c, false
	}
	c.RTP += off
	return c, true
}

// switchSplice re-bases a live relay that a fill took after another source
// whose packets came from another origin session (mesh.Splice): a relay
// that fell behind during a healed partition may be replaced by a node of
// the other half, which pulled the stream in a session of its own (its
// own sequence numbers, timestamps and packet numbers). It drops the
// relay's packets until a key frame (or keyWaitMax), then re-bases them
// to continue the recording: its players see one stream.
type switchSplice struct {
	rebase
	waitEnd time.Time
}

func newSwitchSplice(w *store.Writer, m store.Manifest, log *slog.Logger) *switchSplice {
	return &switchSplice{rebase: newRebase(w, m, log), waitEnd: time.Now().Add(keyWaitMax)}
}

var _ mesh.Splice = (*switchSplice)(nil)

// Packet drops packets before the first key frame, then re-bases.
func (s *switchSplice) Packet(p *store.Packet) bool {
	if len(p.RTP) < 12 || int(p.Track) >= len(s.tracks) {
		return false
	}
	if s.sp == nil {
		if p.Flags&store.FlagKeyStart == 0 && time.Now().Before(s.waitEnd) {
			return false
		}
		s.start()
		s.log.Info("live relay from another origin session: its packets continue the recording", "gap", s.sp.Gap(time.Now()).Round(time.Millisecond))
	}
	s.packet(p)
	return true
}

// Clock: see rebase.clock.
func (s *switchSplice) Clock(track uint8, c store.Clock) (store.Clock, bool) {
	return s.clock(track, c)
}

// liveHead is the node whose origin session a live upstream's packets come
// from: its relay chain's first (the origin-facing node), or
// store.SourceOrigin for this node's own session.
func liveHead(m store.Manifest) string {
	if len(m.Via) > 0 {
		return m.Via[0]
	}
	return m.Source
}
