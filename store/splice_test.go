package store

import (
	"encoding/binary"
	"testing"
	"time"
)

// TestSpliceContinuesWriter: a new source's packets, re-based to what a
// live writer holds, continue its tt, packet numbers and each track's
// timestamps; a writer with nothing stored leaves them as they come.
func TestSpliceContinuesWriter(t *testing.T) {
	t.Parallel()
	s := memStore(t, Options{})
	w, err := s.Create(Manifest{Key: "live", Tracks: avTracks(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	empty := TailOf(w, 2)
	pkt := func(track uint8, tt time.Duration, pn uint64, ts uint32) Packet {
		b := rtpFor(pn, 40)
		binary.BigEndian.PutUint32(b[4:8], ts)
		return Packet{Track: track, TT: tt, PN: pn, RTP: b}
	}
	for _, p := range []Packet{pkt(0, 4*time.Second, 41, 9000), pkt(1, 5*time.Second, 42, 4800)} {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	tail := TailOf(w, 2)
	if !tail.OK || tail.TT != 5*time.Second || tail.PN != 42 || tail.At.IsZero() ||
		tail.Tracks[0] != (TrackTail{OK: true, TS: 9000, TT: 4 * time.Second}) || tail.Tracks[1] != (TrackTail{OK: true, TS: 4800, TT: 5 * time.Second}) {
		t.Fatalf("tail %+v", tail)
	}

	now := tail.At.Add(300 * time.Millisecond) // the new source's first packet arrives 300 ms after the last stored
	sp := NewSplice(tail, []uint32{90000, 48000})
	for _, c := range []struct {
		in     Packet
		pn     bool
		tt     time.Duration
		seq    uint64
		ts     uint32
		offset uint32
	}{
		// tt 5 s + 300 ms, pn 43, timestamps 1.3 s of 90 kHz past 9000.
		{pkt(0, 100*time.Millisecond, 7, 1000), true, 5300 * time.Millisecond, 43, 9000 + 117000, 9000 + 117000 - 1000},
		// audio: 300 ms of 48 kHz past 4800; a number the caller counts on itself stays.
		{pkt(1, 100*time.Millisecond, 500, 77), false, 5300 * time.Millisecond, 500, 4800 + 14400, 4800 + 14400 - 77},
		// later packets keep their differences.
		{pkt(0, 140*time.Millisecond, 8, 4600), true, 5340 * time.Millisecond, 44, 9000 + 117000 + 3600, 9000 + 117000 - 1000},
	} {
		p := c.in
		sp.Rebase(&p, c.pn, now)
		off, ok := sp.Offset(p.Track)
		if ts := binary.BigEndian.Uint32(p.RTP[4:8]); p.TT != c.tt || p.PN != c.seq || ts != c.ts || !ok || off != c.offset {
			t.Fatalf("track %d: tt %v pn %d ts %d offset %d (%v), want %v %d %d %d", p.Track, p.TT, p.PN, ts, off, ok, c.tt, c.seq, c.ts, c.offset)
		}
	}
	if gap := sp.Gap(now); gap != 300*time.Millisecond {
		t.Fatalf("gap %v, want 300ms", gap)
	}

	// Nothing stored: nothing shifts.
	sp = NewSplice(empty, []uint32{90000, 48000})
	p := pkt(0, 100*time.Millisecond, 7, 1234)
	sp.Rebase(&p, true, now)
	if ts := binary.BigEndian.Uint32(p.RTP[4:8]); p.TT != 100*time.Millisecond || p.PN != 7 || ts != 1234 {
		t.Fatalf("with an empty tail: tt %v pn %d ts %d, want them unchanged", p.TT, p.PN, ts)
	}
	if _, ok := sp.Offset(1); ok {
		t.Fatal("an offset for a track with no packet yet")
	}
}

func TestTicksConversions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ticks int64
		rate  uint32
		d     time.Duration
	}{
		{90000, 90000, time.Second},
		{-45000, 90000, -500 * time.Millisecond},
		{1, 90000, 11111 * time.Nanosecond},
		{48000 * 3600 * 24 * 365, 48000, 365 * 24 * time.Hour}, // ticks × 1e9 overflows int64
	} {
		if got := TicksToDuration(c.ticks, c.rate); got != c.d {
			t.Errorf("TicksToDuration(%d, %d) = %s, want %s", c.ticks, c.rate, got, c.d)
		}
		if c.d%time.Millisecond == 0 {
			if got := DurationToTicks(c.d, c.rate); got != c.ticks {
				t.Errorf("DurationToTicks(%s, %d) = %d, want %d", c.d, c.rate, got, c.ticks)
			}
		}
	}

	// Clock.At takes the timestamp nearest the mapping's, across the wrap.
	ntp := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	c := Clock{RTP: 0xFFFF_0000, NTP: ntp}
	if got, want := c.At(90000-0x1_0000, 90000), ntp.Add(time.Second); !got.Equal(want) {
		t.Errorf("a second after: %s, want %s", got, want)
	}
	if got, want := c.At(0x1_0000, 90000), ntp.Add(TicksToDuration(0x2_0000, 90000)); !got.Equal(want) {
		t.Errorf("past the wrap: %s, want %s", got, want)
	}
	if got, want := c.At(0xFFFF_0000-90000, 90000), ntp.Add(-time.Second); !got.Equal(want) {
		t.Errorf("a second before: %s, want %s", got, want)
	}
}
