package rtspedge

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestRunEndsWhereOriginDrops: an origin that drops packets of a play at a
// Speed of 8 or more once it reaches a point of the clip (its controlled
// fault, as a server whose queue for a slow client overflowed) ends the
// Run with a DroppedError before the gap,
// nothing after it stored; each Reopen asks for half the speed, and the
// play at Speed 4 resumes after the last packet stored and ends the
// recording: the origin's packets, each once, no hole.
func TestRunEndsWhereOriginDrops(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		random, derived bool
	}{{"same numbers", false, false}, {"random bases", true, false}, {"derived, random bases", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runUntilNoDrop(t, tc.random, tc.derived)
		})
	}
}

// runUntilNoDrop is TestRunEndsWhereOriginDrops with an origin that starts
// each session at random sequence numbers and timestamps (random) or at
// the same, with meta-info or without (derived): the resumed sessions'
// packets are re-based to continue the stored ones, so the recording steps
// as the origin's clip does.
func runUntilNoDrop(t *testing.T, random, derived bool) {
	// Without meta-info a granted Speed is checked against wall-clock
	// time, which takes longer: the packets a check holds when the origin
	// drops are not stored, so the drop comes later there.
	at, count := 2*time.Second, uint64(30)
	if derived {
		at = 8 * time.Second
	}
	o, _ := startOrigin(t, origin.Config{MaxSpeed: 16, DropAtSpeed: 8, DropAt: at, DropCount: int(count), RandomRTPBase: random, DisableMetaInfo: derived})
	clip, err := origin.Packetize(origin.SampleClip())
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	s, err := OpenOrigin(t.Context(), OriginRequest{URL: originURL(o, samplePath), Timeout: 5 * time.Second, AskMetaInfo: true, Speed: 16})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest()
	m.Key = "k"
	w, err := st.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	var speeds []float64
	for {
		err := s.Run(t.Context(), w)
		if err == nil {
			break
		}
		var d *DroppedError
		if !errors.As(err, &d) || !errors.Is(err, ErrOriginDropped) {
			t.Fatalf("Run: %v, want a DroppedError", err)
		}
		if d.Lost == 0 || d.Lost > count {
			t.Fatalf("%v: %d lost, the origin dropped %d (of both tracks)", err, d.Lost, count)
		}
		// Nothing past the gap: the play dropped its first packets at
		// `at` or later.
		if tt, _, ok := w.Last(); ok && tt >= at {
			t.Fatalf("%v: the writer holds a packet at %v, after the drop at %v", err, tt, at)
		}
		speeds = append(speeds, d.Speed)
		if len(speeds) > 2 {
			t.Fatalf("still dropping after plays at %v", speeds)
		}
		if s, err = s.Reopen(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if len(speeds) != 2 || speeds[0] != 16 || speeds[1] != 8 {
		t.Fatalf("plays that dropped were at %v times real time, want 16 and 8 (each Reopen halves it)", speeds)
	}
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	got, off := readFromStart(t, st, "k")
	if derived {
		checkDerivedResumes(t, got, clip, m.Tracks, len(speeds))
		return
	}
	if len(got)+off != len(clip.Packets) {
		t.Fatalf("stored %d packets, the origin sends %d", len(got)+off, len(clip.Packets))
	}
	if !random {
		for i := range got {
			samePacket(t, i+off, got[i], clip.Packets[i+off], 0, true)
		}
		return
	}
	// Each track as the clip's: numbers that step alike, one SSRC.
	gotRTP, wantRTP := map[uint8][][]byte{}, map[uint8][][]byte{}
	for i, p := range got {
		if want := clip.Packets[i+off]; p.PN != want.PN || p.Track != want.Track {
			t.Fatalf("packet %d: pn %d track %d, want pn %d track %d", i, p.PN, p.Track, want.PN, want.Track)
		}
		gotRTP[p.Track] = append(gotRTP[p.Track], p.RTP)
		wantRTP[p.Track] = append(wantRTP[p.Track], clip.Packets[i+off].RTP)
	}
	for tr, want := range wantRTP {
		if err := testkit.SameRTP(gotRTP[tr], want); err != nil {
			t.Fatalf("track %d against the clip: %v", tr, err)
		}
	}
}

// checkDerivedResumes checks a recording resumed resumes times from an
// origin without meta-info: each resume loses at most the rest of the
// frame at the cut (Run drops by tt), no packet is stored twice, and each
// track's timestamps step as its tt do, across the resumes too.
func checkDerivedResumes(t *testing.T, got []store.Packet, clip *origin.Clip, tracks []store.Track, resumes int) {
	t.Helper()
	if missing := len(clip.Packets) - len(got); missing < 0 || missing > 2+60*resumes {
		t.Fatalf("stored %d packets of %d after %d resumes", len(got), len(clip.Packets), resumes)
	}
	type last struct {
		seq uint16
		ts  uint32
		tt  time.Duration
		ok  bool
	}
	tails := map[uint8]*last{}
	for i, p := range got {
		var h rtp.Header
		if _, err := h.Unmarshal(p.RTP); err != nil {
			t.Fatal(err)
		}
		l := tails[p.Track]
		if l == nil {
			l = &last{}
			tails[p.Track] = l
		}
		if l.ok {
			if h.SequenceNumber == l.seq {
				t.Fatalf("packet %d: track %d seq %d stored twice", i, p.Track, h.SequenceNumber)
			}
			ticks := time.Duration(int32(h.Timestamp-l.ts)) * time.Second / time.Duration(tracks[p.Track].ClockRate)
			if d := ticks - (p.TT - l.tt); d < -2*time.Millisecond || d > 2*time.Millisecond {
				t.Fatalf("packet %d (track %d, tt %v): timestamp steps %v from the last, its tt %v", i, p.Track, p.TT, ticks, p.TT-l.tt)
			}
		}
		*l = last{h.SequenceNumber, h.Timestamp, p.TT, true}
	}
}
