package store

import (
	"encoding/binary"
	"time"
)

// Splice re-bases the packets of a new source of a live recording that
// already has packets, so that the recording goes on as one stream. A
// new source starts its tt, packet numbers and RTP timestamps at values of
// its own: a new origin session after the last one ended (rtspedge), or
// the designated filler's relay that takes over a stream after a
// partition healed (node/fill).
//
//   - tt: the first packet re-based gets the recording's last tt plus the
//     wall-clock gap since the last stored packet arrived (zero when
//     unknown), and every later packet the same shift, so players paced by
//     tt stay in step with the wall clock.
//   - pn: the first packet gets the recording's last pn + 1, and later
//     packets keep their differences to it (PN false in Rebase leaves
//     numbers alone: the caller counts on from the last).
//   - RTP timestamps: each track is shifted by a constant so that its
//     first re-based packet's timestamp is the track's last stored
//     timestamp plus the tt between the two packets in clock ticks
//     (unshifted when the track has no stored packet). Players are sent
//     stored timestamps plus one offset per PLAY, so stored timestamps
//     must stay continuous.
//
// Which packets a source drops before its first (until a key frame) is
// the caller's to decide.
type Splice struct {
	tail  Tail
	rates []uint32 // clock rate per track

	based bool // the first packet was re-based: ttOff and pnOff are set
	ttOff time.Duration
	pnOff uint64 // added to the source's packet numbers (wrapping)
	ts    []tsOffset
}

type tsOffset struct {
	based bool
	off   uint32
}

// Tail is where a live recording's packets stop, as its writer tracks
// them: the last packet's tt and pn, when the last packet arrived, and
// each track's last timestamp and tt.
type Tail struct {
	OK     bool // a packet was appended: TT, PN are set
	TT     time.Duration
	PN     uint64
	At     time.Time // arrival of the last appended packet; zero if unknown
	Tracks []TrackTail
}

// TrackTail is where one track of a live recording stops.
type TrackTail struct {
	OK bool
	TS uint32        // RTP timestamp as stored
	TT time.Duration // tt as stored
}

// TailWriter is what TailOf reads: a Writer, or what stands for one.
type TailWriter interface {
	Last() (tt time.Duration, pn uint64, ok bool)
	TrackTail(track uint8) (Packet, time.Time, bool)
}

// TailOf is where w's packets of n tracks stop.
func TailOf(w TailWriter, n int) Tail {
	t := Tail{Tracks: make([]TrackTail, n)}
	t.TT, t.PN, t.OK = w.Last()
	for i := range t.Tracks {
		p, at, ok := w.TrackTail(uint8(i))
		if !ok || len(p.RTP) < 12 {
			continue
		}
		t.Tracks[i] = TrackTail{OK: true, TS: binary.BigEndian.Uint32(p.RTP[4:8]), TT: p.TT}
		if at.After(t.At) {
			t.At = at
		}
	}
	return t
}

// NewSplice re-bases packets to continue tail; rates are the clock rates
// of the source's tracks, by index.
func NewSplice(tail Tail, rates []uint32) *Splice {
	return &Splice{tail: tail, rates: rates, ts: make([]tsOffset, len(rates))}
}

// Rebase re-bases p, a packet of a track below the rates' count whose RTP
// holds a header, which arrived at now. Its packet number is shifted only
// when pn is true. The first packet sets the shifts of tt and pn.
func (s *Splice) Rebase(p *Packet, pn bool, now time.Time) {
	if !s.based {
		s.based = true
		if s.tail.OK {
			s.ttOff = s.tail.TT + s.Gap(now) - p.TT
			s.pnOff = s.tail.PN + 1 - p.PN
		}
	}
	p.TT = max(p.TT+s.ttOff, 0)
	if pn {
		p.PN += s.pnOff
	}
	ts := binary.BigEndian.Uint32(p.RTP[4:8])
	o := &s.ts[p.Track]
	if !o.based {
		o.based = true
		if int(p.Track) < len(s.tail.Tracks) && s.tail.Tracks[p.Track].OK {
			last := s.tail.Tracks[p.Track]
			o.off = last.TS + uint32(DurationToTicks(p.TT-last.TT, s.rates[p.Track])) - ts
		}
	}
	binary.BigEndian.PutUint32(p.RTP[4:8], ts+o.off)
}

// Gap is the wall-clock time from the last stored packet's arrival to
// now (zero when unknown).
func (s *Splice) Gap(now time.Time) time.Duration {
	if s.tail.At.IsZero() {
		return 0
	}
	return max(now.Sub(s.tail.At), 0)
}

// Offset is what Rebase adds to track's RTP timestamps; false before the
// track's first re-based packet.
func (s *Splice) Offset(track uint8) (uint32, bool) {
	if int(track) >= len(s.ts) || !s.ts[track].based {
		return 0, false
	}
	return s.ts[track].off, true
}

// TicksToDuration is ticks of an RTP clock of rate ticks per second as a
// duration, without overflow: DurationToTicks's inverse.
func TicksToDuration(ticks int64, rate uint32) time.Duration {
	c := int64(rate)
	return time.Duration(ticks/c)*time.Second + time.Duration(ticks%c*int64(time.Second)/c)
}

// DurationToTicks is d in ticks of an RTP clock of rate ticks per second,
// without overflow.
func DurationToTicks(d time.Duration, rate uint32) int64 {
	c := int64(rate)
	return int64(d/time.Second)*c + int64(d%time.Second)*c/int64(time.Second)
}
