package rtspedge

import (
	"encoding/binary"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// keyWaitMax bounds how long a spliced live session drops packets while it
// waits for the first key frame of its video (an origin whose key frames we
// cannot see must not starve the recording).
const keyWaitMax = 10 * time.Second

// liveTail is where a live recording's packets stopped, as its writer
// tracks them (store.Writer.TrackTail): when the last one arrived and, per
// track, the RTP timestamp and tt of the track's last packet. A new session
// on the recording starts from it, so the recording continues without a
// jump, whoever appended before (an earlier session, or peers).
type liveTail struct {
	at     time.Time   // arrival of the last appended packet; zero if unknown
	tracks []trackTail // by track index
}

type trackTail struct {
	ok bool
	ts uint32        // RTP timestamp as stored
	tt time.Duration // tt as stored
}

// tailOf is where w's packets of n tracks stop.
func tailOf(w PacketWriter, n int) liveTail {
	t := liveTail{tracks: make([]trackTail, n)}
	for i := range t.tracks {
		p, at, ok := w.TrackTail(uint8(i))
		if !ok || len(p.RTP) < 8 {
			continue
		}
		t.tracks[i] = trackTail{ok: true, ts: binary.BigEndian.Uint32(p.RTP[4:8]), tt: p.TT}
		if at.After(t.at) {
			t.at = at
		}
	}
	return t
}

// liveSplice re-bases the packets of a live session whose recording already
// has packets: a new session's tt, packet numbers and RTP timestamps start at
// arbitrary values, and the recording must go on as one stream.
//
//   - Packets are dropped until the first key frame of a video track whose
//     frames can be classified (for at most keyWaitMax after PLAY), so the
//     continuation decodes on its own.
//   - tt: the first kept packet gets the recording's last tt plus the
//     wall-clock gap since the last stored packet arrived (zero when unknown),
//     and every later packet the same shift, so players paced by tt stay in
//     step with the wall clock.
//   - pn: the first kept packet gets the recording's last pn + 1; numbers the
//     origin sends (meta-info) keep their differences after it, derived
//     numbers are counted on.
//   - RTP timestamps: each track is shifted by a constant so that its first
//     kept packet's timestamp is the track's last stored timestamp plus the
//     tt between the two packets in clock ticks (unshifted when the track's
//     last stored packet is unknown). The edge replays stored timestamps plus
//     one offset per PLAY, so stored timestamps must stay continuous.
type liveSplice struct {
	from    liveTail
	lastTT  time.Duration // the recording's last tt
	waitKey bool          // still dropping until a key frame
	waitEnd time.Time     // stop waiting for a key frame then

	based bool // the first packet was kept: ttOff and pnOff are set
	ttOff time.Duration
	pnOff uint64  // added to the origin's packet numbers (wrapping)
	ts    []tsOff // by track index
}

type tsOff struct {
	based bool
	off   uint32
}

func newLiveSplice(from liveTail, lastTT time.Duration, tracks []*originTrack) *liveSplice {
	s := &liveSplice{from: from, lastTT: lastTT, ts: make([]tsOff, len(tracks))}
	for _, t := range tracks {
		if t.video && t.tracker != nil {
			s.waitKey = true
		}
	}
	return s
}

// start begins the wait for a key frame at the PLAY answer.
func (s *liveSplice) start(now time.Time) { s.waitEnd = now.Add(keyWaitMax) }

// rebase re-bases p, which arrived at now; p.RTP is the packet as received.
// nextPN is the number the next packet gets when the origin sends none. It
// returns false for a packet to drop.
func (s *liveSplice) rebase(p *store.Packet, originPN bool, nextPN uint64, clock uint32, now time.Time) bool {
	if s.waitKey {
		if p.Flags&store.FlagKeyStart == 0 && now.Before(s.waitEnd) {
			return false
		}
		s.waitKey = false
	}
	if !s.based {
		s.based = true
		gap := time.Duration(0)
		if !s.from.at.IsZero() {
			gap = max(now.Sub(s.from.at), 0)
		}
		s.ttOff = s.lastTT + gap - p.TT
		s.pnOff = nextPN - p.PN
	}
	p.TT = max(p.TT+s.ttOff, 0)
	if originPN {
		p.PN += s.pnOff
	}
	ts := binary.BigEndian.Uint32(p.RTP[4:8])
	o := &s.ts[p.Track]
	if !o.based {
		o.based = true
		if int(p.Track) < len(s.from.tracks) && s.from.tracks[p.Track].ok {
			last := s.from.tracks[p.Track]
			o.off = last.ts + uint32(durationToTicks(p.TT-last.tt, clock)) - ts
		}
	}
	binary.BigEndian.PutUint32(p.RTP[4:8], ts+o.off)
	return true
}

// tsOffset is what rebase adds to track's RTP timestamps; ok is false
// before the track's first kept packet.
func (s *liveSplice) tsOffset(track uint8) (uint32, bool) {
	if int(track) >= len(s.ts) || !s.ts[track].based {
		return 0, false
	}
	return s.ts[track].off, true
}
