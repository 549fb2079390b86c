package rtspedge

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// appended is one packet as Run handed it to the writer, and when.
type appended struct {
	store.Packet
	ts uint32
	at time.Time
}

// appendLog is a PacketWriter that keeps what is appended to a store.Writer.
type appendLog struct {
	w *store.Writer

	mu   sync.Mutex
	pkts []appended
}

func (l *appendLog) Append(p store.Packet) error {
	a := appended{Packet: p, ts: binary.BigEndian.Uint32(p.RTP[4:8]), at: time.Now()}
	a.RTP = nil
	l.mu.Lock()
	l.pkts = append(l.pkts, a)
	l.mu.Unlock()
	return l.w.Append(p)
}

func (l *appendLog) Last() (time.Duration, uint64, bool) { return l.w.Last() }

func (l *appendLog) TrackTail(track uint8) (store.Packet, time.Time, bool) {
	return l.w.TrackTail(track)
}

func (l *appendLog) snapshot() []appended {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]appended(nil), l.pkts...)
}

// spans says whether every track has packets from index from on, over at
// least d of tt.
func (l *appendLog) spans(from, tracks int, d time.Duration) bool {
	pkts := l.snapshot()
	if from >= len(pkts) {
		return false
	}
	first := make(map[uint8]time.Duration)
	for _, p := range pkts[from:] {
		if f, ok := first[p.Track]; !ok {
			first[p.Track] = p.TT
		} else if p.TT-f >= d {
			first[p.Track] = -time.Hour // long enough
		}
	}
	if len(first) < tracks {
		return false
	}
	for _, f := range first {
		if f != -time.Hour {
			return false
		}
	}
	return true
}

// TestLiveResumeContinuous: a live origin session that drops (the origin
// restarts on the same port: its clock, packet numbers and timestamps start
// again) or stalls (sends no RTP for the timeout) ends Run with
// ErrOriginUnavailable; the session reopened into the same writer continues
// the recording exactly:
//   - pn goes on by one, across the splice too;
//   - the first packet after the splice starts a key frame, and its tt is the
//     last stored tt plus the wall-clock gap between the two appends;
//   - per track, the first timestamp after the splice is the last stored one
//     plus the tt between the two packets in clock ticks.
func TestLiveResumeContinuous(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	for _, tc := range []struct {
		name  string
		stall bool
		meta  bool
	}{
		{"drop/meta-info", false, true},
		{"drop/plain", false, false},
		{"stall/meta-info", true, true},
		{"stall/plain", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			live := origin.Config{Media: map[string][]byte{}, Live: map[string][]byte{"live.ts": origin.SampleClip()}}
			o1, stop1 := startOrigin(t, live)
			url := originURL(o1, "live.ts")
			s1, err := OpenOrigin(t.Context(), OriginRequest{URL: url, Timeout: timeout, AskMetaInfo: tc.meta})
			if err != nil {
				t.Fatal(err)
			}
			defer s1.Close()
			m := s1.Manifest()
			m.Key = "live"
			w, err := newStore(t).Create(m)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Finish(store.StatePartial)
			l := &appendLog{w: w}
			run1 := make(chan error, 1)
			go func() { run1 <- s1.Run(t.Context(), l) }()
			testkit.Eventually(t, 10*time.Second, "a second of every track", func() bool { return l.spans(0, len(m.Tracks), time.Second) })

			broken := time.Now()
			if tc.stall {
				if n := o1.Stall("live.ts"); n != 1 {
					t.Fatalf("stalled %d sessions, want 1", n)
				}
			} else {
				stop1()
				live.Listen = o1.Addr()
				startOrigin(t, live)
			}
			select {
			case err := <-run1:
				if !errors.Is(err, ErrOriginUnavailable) {
					t.Fatalf("Run after the origin broke: %v, want ErrOriginUnavailable", err)
				}
			case <-time.After(timeout + 5*time.Second):
				t.Fatal("Run did not return after the origin broke")
			}
			t.Logf("Run returned %v after the origin broke", time.Since(broken).Round(time.Millisecond))

			split := len(l.snapshot())
			s2, err := s1.Reopen(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			ctx, cancel := context.WithCancel(t.Context())
			run2 := make(chan error, 1)
			go func() { run2 <- s2.Run(ctx, l) }()
			testkit.Eventually(t, 10*time.Second, "a second of every track after the splice", func() bool {
				return l.spans(split, len(m.Tracks), time.Second)
			})
			cancel()
			if err := <-run2; !errors.Is(err, context.Canceled) {
				t.Fatalf("second Run: %v", err)
			}
			checkSplice(t, l.snapshot(), split, m.Tracks)
		})
	}
}

// checkSplice checks the continuity rules of TestLiveResumeContinuous.
func checkSplice(t *testing.T, pkts []appended, split int, tracks []store.Track) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].PN != pkts[i-1].PN+1 {
			t.Fatalf("packet %d (split at %d): pn %d after %d", i, split, pkts[i].PN, pkts[i-1].PN)
		}
	}
	last, first := pkts[split-1], pkts[split]
	if first.Flags&store.FlagKeyStart == 0 || tracks[first.Track].Media != "video" {
		t.Fatalf("first packet after the splice: track %d flags %#x, want a video key start", first.Track, first.Flags)
	}
	wall := first.at.Sub(last.at)
	if d := first.TT - last.TT - wall; d < -20*time.Millisecond || d > 20*time.Millisecond {
		t.Fatalf("tt after the splice: %v → %v (+%v), want + the wall-clock gap %v", last.TT, first.TT, first.TT-last.TT, wall)
	}
	t.Logf("splice: gap %v, tt %v → %v, pn %d → %d", wall.Round(time.Millisecond), last.TT, first.TT, last.PN, first.PN)
	for k, tr := range tracks {
		var before, after *appended
		for i := split - 1; i >= 0 && before == nil; i-- {
			if int(pkts[i].Track) == k {
				before = &pkts[i]
			}
		}
		for i := split; i < len(pkts) && after == nil; i++ {
			if int(pkts[i].Track) == k {
				after = &pkts[i]
			}
		}
		// To the tick: the gap is a difference of nanosecond times cut
		// to clock ticks, which the splice and this check may round on
		// either side of a tick (seen: one 48 kHz tick, 21 µs).
		want := before.ts + uint32(store.DurationToTicks(after.TT-before.TT, tr.ClockRate))
		if d := int32(after.ts - want); d < -1 || d > 1 {
			t.Errorf("track %d: timestamp %d after %d (tt %v → %v), want %d (± 1)", k, after.ts, before.ts, before.TT, after.TT, want)
		}
	}
}

// TestLiveSpliceRebase: packets before the first key frame are dropped; the
// first kept one sets the tt and pn shifts; each track's timestamps shift
// from its own last stored packet; a stream without key frames is kept after
// keyWaitMax.
func TestLiveSpliceRebase(t *testing.T) {
	t.Parallel()
	video := &description.Media{Type: description.MediaTypeVideo}
	tracks := []*originTrack{
		{index: 0, media: video, clock: 90000, video: true, tracker: &metainfo.Tracker{Classify: metainfo.FrameTypeH264}},
		{index: 1, media: &description.Media{Type: description.MediaTypeAudio}, clock: 48000},
	}
	t0 := time.Now()
	tail := store.Tail{OK: true, TT: 5010 * time.Millisecond, PN: 42, At: t0,
		Tracks: []store.TrackTail{{OK: true, TS: 1000, TT: 5 * time.Second}, {OK: true, TS: 500, TT: 5010 * time.Millisecond}}}
	pkt := func(track uint8, tt time.Duration, pn uint64, ts uint32, key bool) *store.Packet {
		raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, Timestamp: ts}, Payload: []byte{1}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := &store.Packet{Track: track, TT: tt, PN: pn, RTP: raw}
		if key {
			p.Flags = store.FlagKeyStart
		}
		return p
	}
	s := newLiveSplice(tail, tracks)
	s.start(t0.Add(2 * time.Second))
	now := t0.Add(2 * time.Second)
	for _, c := range []struct {
		p      *store.Packet
		keep   bool
		tt     time.Duration
		pn, ts uint32
	}{
		{pkt(1, 100*time.Millisecond, 76, 7, false), false, 0, 0, 0},
		{pkt(0, 150*time.Millisecond, 76, 8000, false), false, 0, 0, 0},
		{pkt(0, 200*time.Millisecond, 77, 9000, true), true, 7010 * time.Millisecond, 43, 1000 + 90000*201/100},
		{pkt(1, 210*time.Millisecond, 78, 70, false), true, 7020 * time.Millisecond, 44, 500 + 48000*201/100},
		{pkt(0, 240*time.Millisecond, 79, 12600, false), true, 7050 * time.Millisecond, 45, 1000 + 90000*201/100 + 3600},
	} {
		keep := s.rebase(c.p, true, now)
		if keep != c.keep {
			t.Fatalf("packet pn %d: kept %v, want %v", c.p.PN, keep, c.keep)
		}
		if !keep {
			continue
		}
		if ts := binary.BigEndian.Uint32(c.p.RTP[4:8]); c.p.TT != c.tt || c.p.PN != uint64(c.pn) || ts != c.ts {
			t.Fatalf("rebased to tt %v pn %d ts %d, want %v %d %d", c.p.TT, c.p.PN, ts, c.tt, c.pn, c.ts)
		}
	}

	// No key frame ever: kept once keyWaitMax has passed since PLAY.
	s = newLiveSplice(tail, tracks)
	s.start(t0)
	if s.rebase(pkt(0, 0, 1, 0, false), false, t0.Add(keyWaitMax/2)) {
		t.Fatal("kept a packet before the key frame")
	}
	if !s.rebase(pkt(0, 0, 1, 0, false), false, t0.Add(keyWaitMax)) {
		t.Fatal("still waiting for a key frame after keyWaitMax")
	}
}
