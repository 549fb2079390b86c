package rtspedge

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// shiftFrame is the frame period of shiftSource: 25 fps.
const shiftFrame = 40 * time.Millisecond

// shiftSource is a synthetic live H.264 stream: frame f is one packet with
// pn f and tt f*shiftFrame, a key frame (IDR) every gop frames; the payload
// carries the pn, so a player can say which stored packet it got.
type shiftSource struct {
	w    *store.Writer
	gop  int
	next int // frame appended next
}

// shiftSetup opens a store with the given live window, a live recording
// "live" in it holding the first frames of a shiftSource, and a server.
func shiftSetup(t *testing.T, window time.Duration, gop, frames int) (*store.Store, *shiftSource, *Server) {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true, LiveWindow: window, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	w, err := st.Create(store.Manifest{Key: "live", SDP: []byte(synthSDP), Live: true,
		Tracks: []store.Track{{Control: "trackID=0", Media: "video", PayloadType: 96, ClockRate: 90000, Codec: "H264"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Finish(store.StatePartial) })
	src := &shiftSource{w: w, gop: gop}
	if err := src.append(frames); err != nil {
		t.Fatal(err)
	}
	return st, src, startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})
}

// append adds n frames at once.
func (src *shiftSource) append(n int) error {
	payload := make([]byte, 200)
	for ; n > 0; n-- {
		f := src.next
		pk := store.Packet{TT: time.Duration(f) * shiftFrame, PN: uint64(f), FT: store.FrameP}
		payload[0] = 0x41 // non-IDR slice
		if f%src.gop == 0 {
			payload[0] = 0x65 // IDR slice
			pk.FT, pk.Flags = store.FrameKey, store.FlagKeyStart
		}
		binary.BigEndian.PutUint64(payload[1:], uint64(f))
		raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(f),
			Timestamp: uint32(f * 3600), SSRC: 1, Marker: true}, Payload: payload}).Marshal()
		if err != nil {
			return err
		}
		pk.RTP = raw
		if err := src.w.Append(pk); err != nil {
			return err
		}
		src.next++
	}
	return nil
}

// run appends frames in real time times speed until the test ends.
func (src *shiftSource) run(t *testing.T, speed float64) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	start, first := time.Now(), src.next
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond) // pacing the source, not waiting for an event
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			due := first + int(float64(time.Since(start))*speed/float64(shiftFrame))
			if err := src.append(due - src.next); err != nil {
				t.Errorf("live source: %v", err)
				return
			}
		}
	}()
}

// shiftPlayer is a testPlayer that also records each packet's stored pn
// and arrival time.
type shiftPlayer struct {
	*testPlayer
	noRange atomic.Bool // PLAY goes out without a Range (gortsplib sends npt=0-)
	pns     []uint64    // guarded by testPlayer.mu, one per received packet
	ats     []time.Time // arrival times
}

func newShiftPlayer(t *testing.T, s *Server) *shiftPlayer {
	t.Helper()
	p := &shiftPlayer{testPlayer: newTestPlayer(t, serverURL(s, "live"), gortsplib.TransportTCP)}
	// Set before the first PLAY, which orders it before the client's reads.
	p.c.OnRequest = func(req *base.Request) {
		if req.Method == base.Play && p.noRange.Load() {
			delete(req.Header, "Range")
		}
	}
	p.c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
		rx := rxPacket{seq: pkt.SequenceNumber, ts: pkt.Timestamp}
		var pn uint64 = math.MaxUint64
		if len(pkt.Payload) >= 9 {
			rx.keyStart = pkt.Payload[0]&0x1f == 5
			pn = binary.BigEndian.Uint64(pkt.Payload[1:9])
		}
		now := time.Now()
		p.mu.Lock()
		p.pkts = append(p.pkts, rx)
		p.pns = append(p.pns, pn)
		p.ats = append(p.ats, now)
		p.mu.Unlock()
		select {
		case p.arrive <- struct{}{}:
		default:
		}
	})
	return p
}

// playRange sends PLAY with r (nil: no Range) and returns the answer.
func (p *shiftPlayer) playRange(t *testing.T, r headers.RangeValue) *base.Response {
	t.Helper()
	var rng *headers.Range
	if r != nil {
		rng = &headers.Range{Value: r}
	}
	p.noRange.Store(r == nil)
	res, err := p.c.Play(rng)
	if err != nil {
		t.Fatalf("PLAY: %v", err)
	}
	return res
}

// log returns what arrived: pns, key starts and arrival times.
func (p *shiftPlayer) log() ([]uint64, []rxPacket, []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.pns...), append([]rxPacket(nil), p.pkts...), append([]time.Time(nil), p.ats...)
}

// checkNoHole checks the session's sequence numbers are continuous and its
// timestamps never go back, and that the stored packets form runs of
// consecutive pns, each later run starting at a key frame further on (a
// move to the live edge). It returns the number of moves.
func checkNoHole(t *testing.T, pns []uint64, rx []rxPacket) int {
	t.Helper()
	moves := 0
	for i := 1; i < len(rx); i++ {
		if rx[i].seq != rx[i-1].seq+1 {
			t.Fatalf("packet %d: seq %d after %d", i, rx[i].seq, rx[i-1].seq)
		}
		if d := int32(rx[i].ts - rx[i-1].ts); d <= 0 {
			t.Fatalf("packet %d: timestamp goes from %d to %d", i, rx[i-1].ts, rx[i].ts)
		}
		switch {
		case pns[i] == pns[i-1]+1:
		case pns[i] > pns[i-1] && rx[i].keyStart:
			moves++
		default:
			t.Fatalf("packet %d: stored packet %d after %d (key start %v): a hole or a repeat", i, pns[i], pns[i-1], rx[i].keyStart)
		}
	}
	return moves
}

// answerRange returns the Range of a PLAY answer, of type V.
func answerRange[V headers.RangeValue](t *testing.T, res *base.Response) V {
	t.Helper()
	var r headers.Range
	if err := r.Unmarshal(res.Header["Range"]); err != nil {
		t.Fatalf("Range %v: %v", res.Header["Range"], err)
	}
	v, ok := r.Value.(V)
	if !ok {
		t.Fatalf("Range %v: not a %T", res.Header["Range"], v)
	}
	return v
}

// nptOf returns the start of an npt Range answer.
func nptOf(t *testing.T, res *base.Response) time.Duration {
	t.Helper()
	return answerRange[*headers.RangeNPT](t, res).Start
}

// spanAround runs play (a PLAY of "live") and returns the window start
// before and after it, and the newest packet: the store may still be
// dropping a segment that left the window, so the server saw one of the two.
func spanAround(t *testing.T, st *store.Store, play func()) (before, after, last time.Duration) {
	t.Helper()
	before, _, err := st.Span("live")
	if err != nil {
		t.Fatal(err)
	}
	play()
	after, last, err = st.Span("live")
	if err != nil {
		t.Fatal(err)
	}
	return before, after, last
}

func ttOf(pn uint64) time.Duration { return time.Duration(pn) * shiftFrame }

// TestLiveTimeShiftNPT: PLAY npt=T on a live stream starts at the key frame
// at or before window start + T, answers that position relative to the
// window start, and replays the stored packets at normal speed, not in a
// burst.
func TestLiveTimeShiftNPT(t *testing.T) {
	t.Parallel()
	st, _, s := shiftSetup(t, 4*time.Second, 25, 200)
	const shift = 1500 * time.Millisecond
	p := newShiftPlayer(t, s)
	var res *base.Response
	before, first, last := spanAround(t, st, func() { res = p.playRange(t, &headers.RangeNPT{Start: shift}) })
	keyOf := func(first time.Duration) time.Duration { return (first + shift).Truncate(time.Second) }
	if absDur(nptOf(t, res)-(keyOf(before)-before)) <= time.Millisecond {
		first = before
	}
	key := keyOf(first)
	t.Logf("window %v..%v; npt=%v → key frame at %v", first, last, shift, key)
	if got := nptOf(t, res); absDur(got-(key-first)) > time.Millisecond {
		t.Fatalf("answer Range %v, want npt=%v-", res.Header["Range"], key-first)
	}
	want := 200 - int(key/shiftFrame)
	p.waitPackets(t, want, 10*time.Second)
	pns, rx, ats := p.log()
	if ttOf(pns[0]) != key || !rx[0].keyStart {
		t.Fatalf("first packet: stored tt %v (key start %v), want the key frame at %v", ttOf(pns[0]), rx[0].keyStart, key)
	}
	if moves := checkNoHole(t, pns, rx); moves != 0 {
		t.Fatalf("%d jumps", moves)
	}
	// Paced: packet i arrives (tt_i - tt_0) after the first, give or take
	// the send-ahead (and its grid step) and scheduling.
	var early, late time.Duration
	for i := range pns {
		d := ats[i].Sub(ats[0]) - (ttOf(pns[i]) - key)
		early, late = min(early, d), max(late, d)
	}
	span := ttOf(pns[len(pns)-1]) - key
	t.Logf("%d packets over %v of media in %v; arrival vs. schedule: %v early .. %v late",
		len(pns), span, ats[len(ats)-1].Sub(ats[0]).Round(time.Millisecond), -early, late)
	if ahead := defaultSendAhead + defaultSendAhead/wakeGrid + 60*time.Millisecond; early < -ahead || late > 750*time.Millisecond {
		t.Fatalf("not paced at normal speed: up to %v early, %v late", -early, late)
	}
}

// TestLiveTimeShiftClock: PLAY clock=<UTC> on a live stream starts at the
// key frame at or before the packet stored at that wall-clock time (the
// newest packet is now); before the window it starts at the window's first
// key frame, in the future at the live edge. The answer says where it
// started, in clock= time.
func TestLiveTimeShiftClock(t *testing.T) {
	t.Parallel()
	st, _, s := shiftSetup(t, 4*time.Second, 25, 200)
	first, last, err := st.Span("live")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("window %v..%v", first, last)
	for _, tc := range []struct {
		name   string
		at     time.Duration // from now
		lo, hi func(sent time.Time, at time.Time) time.Duration
	}{
		{"in window", -2500 * time.Millisecond,
			// The packet at `at`, seen from when PLAY went out (and a
			// little later, when the server answered), back to a key frame.
			func(sent, at time.Time) time.Duration {
				return last - sent.Add(500*time.Millisecond).Sub(at) - time.Second
			},
			func(sent, at time.Time) time.Duration { return last - sent.Sub(at) }},
		{"before window", -time.Hour,
			func(time.Time, time.Time) time.Duration { return first },
			func(time.Time, time.Time) time.Duration { return first + time.Second }},
		{"future", time.Hour,
			func(time.Time, time.Time) time.Duration { return 7 * time.Second },
			func(time.Time, time.Time) time.Duration { return 7 * time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newShiftPlayer(t, s)
			// RFC 2326 clock= has whole seconds here (gortsplib writes them so).
			at := time.Now().Add(tc.at).Truncate(time.Second)
			sent := time.Now()
			res := p.playRange(t, &headers.RangeUTC{Start: at})
			p.waitPackets(t, 1, 5*time.Second)
			pns, rx, _ := p.log()
			tt := ttOf(pns[0])
			if lo, hi := tc.lo(sent, at), tc.hi(sent, at); tt < lo || tt > hi || !rx[0].keyStart {
				t.Fatalf("first packet at stored tt %v (key start %v), want a key frame in %v..%v", tt, rx[0].keyStart, lo, hi)
			}
			clock := answerRange[*headers.RangeUTC](t, res)
			// The answer: the wall-clock time of the first packet.
			if want := sent.Add(tt - last); clock.Start.Before(want.Add(-time.Second)) || clock.Start.After(want.Add(time.Second)) {
				t.Fatalf("answer Range %v, want about %v", res.Header["Range"], want.UTC())
			}
		})
	}
}

// TestLivePauseResume: PAUSE on a live stream, then PLAY without a Range
// (ffmpeg, VLC) or with npt=0 (gortsplib clients), resumes where it paused
// (inside the window): the player gets every stored packet once, no gap,
// no repeat, and the answer says where it resumed.
func TestLivePauseResume(t *testing.T) {
	t.Parallel()
	st, src, s := shiftSetup(t, 4*time.Second, 25, 50)
	src.run(t, 1)
	p := newShiftPlayer(t, s)
	p.playRange(t, nil)
	p.waitPackets(t, 20, 5*time.Second)
	for _, resume := range []struct {
		name string
		r    headers.RangeValue
	}{{"no Range", nil}, {"npt=0", &headers.RangeNPT{}}} {
		if _, err := p.c.Pause(); err != nil {
			t.Fatal(err)
		}
		paused := len(p.received())
		_, last, err := st.Span("live")
		if err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "the live stream to move on 1 s", func() bool {
			_, l, err := st.Span("live")
			return err == nil && l >= last+time.Second
		})
		first, _, err := st.Span("live")
		if err != nil {
			t.Fatal(err)
		}
		res := p.playRange(t, resume.r)
		p.waitPackets(t, paused+20, 5*time.Second)
		pns, _, _ := p.log()
		if pns[paused] != pns[paused-1]+1 {
			t.Fatalf("%s: paused after stored packet %d, resumed at %d", resume.name, pns[paused-1], pns[paused])
		}
		if want := ttOf(pns[paused]) - first; absDur(nptOf(t, res)-want) > 300*time.Millisecond {
			t.Fatalf("%s: answer Range %v, want about npt=%v-", resume.name, res.Header["Range"], want)
		}
		t.Logf("%s: paused after stored packet %d, resumed at %d, answer %v", resume.name, pns[paused-1], pns[paused], res.Header["Range"])
	}
	pns, rx, _ := p.log()
	if moves := checkNoHole(t, pns, rx); moves != 0 {
		t.Fatalf("%d jumps", moves)
	}
}

// TestLivePausedPastWindow: a player paused for longer than the window
// resumes at the live edge (a key frame), never at a hole; the session
// timeline continues.
func TestLivePausedPastWindow(t *testing.T) {
	t.Parallel()
	st, src, s := shiftSetup(t, time.Second, 10, 50)
	src.run(t, 1)
	p := newShiftPlayer(t, s)
	p.playRange(t, nil)
	p.waitPackets(t, 10, 5*time.Second)
	if _, err := p.c.Pause(); err != nil {
		t.Fatal(err)
	}
	pns, _, _ := p.log()
	pausedAt := ttOf(pns[len(pns)-1])
	testkit.Eventually(t, 10*time.Second, "the window to pass the paused position", func() bool {
		f, _, err := st.Span("live")
		return err == nil && f > pausedAt+200*time.Millisecond
	})
	_, last, err := st.Span("live")
	if err != nil {
		t.Fatal(err)
	}
	paused := len(pns)
	p.playRange(t, nil)
	p.waitPackets(t, paused+20, 5*time.Second)
	pns, rx, _ := p.log()
	if moves := checkNoHole(t, pns, rx); moves != 1 {
		t.Fatalf("%d moves, want 1 (to the live edge)", moves)
	}
	// The live edge: the latest key frame (a key frame every 0.4 s).
	if tt := ttOf(pns[paused]); tt < last-500*time.Millisecond {
		t.Fatalf("resumed at stored tt %v; the newest packet was at %v", tt, last)
	}
}

// TestLiveOvertakenByWindow: a time-shifted player that the window overtakes
// while playing (here the source runs at 3x, the player at 1x) is moved to
// the live edge, again and again, and never gets a hole.
func TestLiveOvertakenByWindow(t *testing.T) {
	t.Parallel()
	_, src, s := shiftSetup(t, time.Second, 10, 50)
	src.run(t, 3)
	p := newShiftPlayer(t, s)
	p.playRange(t, &headers.RangeNPT{Start: 100 * time.Millisecond})
	var moved int
	testkit.Eventually(t, 10*time.Second, "the player moved to the live edge", func() bool {
		pns, _, _ := p.log()
		for i := 1; i < len(pns); i++ {
			if pns[i] != pns[i-1]+1 {
				moved = len(pns)
				return true
			}
		}
		return false
	})
	p.waitPackets(t, moved+20, 5*time.Second)
	pns, rx, _ := p.log()
	moves := checkNoHole(t, pns, rx)
	if moves < 1 {
		t.Fatalf("no move to the live edge")
	}
	t.Logf("%d packets, %d moves to the live edge", len(pns), moves)
}

// TestLiveNPTZeroIsLiveEdge: no Range and npt=0 (ffmpeg's first PLAY) join
// a live stream at its latest key frame.
func TestLiveNPTZeroIsLiveEdge(t *testing.T) {
	t.Parallel()
	st, _, s := shiftSetup(t, 4*time.Second, 25, 200)
	for name, r := range map[string]headers.RangeValue{"none": nil, "npt=0": &headers.RangeNPT{}} {
		t.Run(name, func(t *testing.T) {
			p := newShiftPlayer(t, s)
			var res *base.Response
			before, first, _ := spanAround(t, st, func() { res = p.playRange(t, r) })
			if absDur(nptOf(t, res)-(7*time.Second-before)) <= time.Millisecond {
				first = before
			}
			p.waitPackets(t, 1, 5*time.Second)
			pns, rx, _ := p.log()
			if tt := ttOf(pns[0]); tt != 7*time.Second || !rx[0].keyStart {
				t.Fatalf("first packet at stored tt %v, want the latest key frame at 7s", tt)
			}
			if got := nptOf(t, res); absDur(got-(7*time.Second-first)) > time.Millisecond {
				t.Fatalf("answer Range %v, want npt=%v-", res.Header["Range"], 7*time.Second-first)
			}
		})
	}
}

// TestLiveRangeFrom: where each live Range points in a window 10s..20s
// whose newest packet arrived now.
func TestLiveRangeFrom(t *testing.T) {
	now := time.Date(2026, 11, 25, 6, 30, 0, 0, time.UTC)
	first, last := 10*time.Second, 20*time.Second
	for _, tc := range []struct {
		name string
		v    string // Range header; "" for none
		want time.Duration
	}{
		{"none", "", liveEdge},
		{"npt=0", "npt=0.000-", liveEdge},
		{"npt=now", "npt=now-", liveEdge},
		{"smpte", "smpte=0:10:00-", liveEdge},
		{"npt in window", "npt=4.5-", 14500 * time.Millisecond},
		{"npt past the end", "npt=30-", liveEdge},
		{"clock in window", "clock=20261125T062957Z-", 17 * time.Second},
		{"clock with fraction", "clock=20261125T062957.250Z-", 17250 * time.Millisecond},
		{"clock before window", "clock=20261125T060000Z-", first},
		{"clock in the future", "clock=20261125T070000Z-", liveEdge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v base.HeaderValue
			if tc.v != "" {
				v = base.HeaderValue{tc.v}
			}
			lr := parseLiveRange(v)
			if got := lr.from(first, last, now); got != tc.want {
				t.Fatalf("%q: from %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}

// TestFFmpegLiveTimeShift: ffmpeg on a live stream with a 1 min window (the
// sample clip looped as live, 12 s of it stored when ffmpeg starts).
// "-seek_timestamp 1 -ss 5" sends PLAY npt=5 and decodes from 5 s after the
// window start; plain "-ss 5" adds the start time ffmpeg saw (the live
// edge) and plays from the live edge. Both decode frames of the clip.
func TestFFmpegLiveTimeShift(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is needed (make test-deps installs it):", err)
	}
	clip := filepath.Join(t.TempDir(), "sample.ts")
	if err := os.WriteFile(clip, origin.SampleClip(), 0o644); err != nil {
		t.Fatal(err)
	}
	o, _ := startOrigin(t, origin.Config{})
	vod := newStore(t)
	m := fill(t, vod, "vod", originURL(o, samplePath), OriginRequest{AskMetaInfo: true, Speed: 8})
	pk := readAll(t, vod, "vod")
	// The loop starts at the clip's first key frame, so that its key frames
	// fall on whole seconds of the window (a read from the start also holds
	// the audio sent 21 ms before it).
	for len(pk) > 0 && pk[0].Flags&store.FlagKeyStart == 0 {
		pk = pk[1:]
	}

	st, err := store.Open("", store.Options{InMemory: true, LiveWindow: time.Minute, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	w, err := st.Create(store.Manifest{Key: "live", SDP: m.SDP, Tracks: m.Tracks, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Finish(store.StatePartial) })
	// The clip looped, 12 s of it at once, then in real time as a live
	// source would, until the test ends.
	const stored = 12 * time.Second
	live := loopClip(t, pk, m)
	next := live()
	for ; next.TT < stored; next = live() {
		if err := w.Append(next); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	fed := make(chan struct{})
	t.Cleanup(func() { cancel(); <-fed })
	go func() {
		defer close(fed)
		start := time.Now()
		tick := time.NewTicker(10 * time.Millisecond) // pacing the source
		defer tick.Stop()
		for ; ; next = live() {
			for time.Since(start) < next.TT-stored {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
			if err := w.Append(next); err != nil {
				t.Errorf("live source: %v", err)
				return
			}
		}
	}()
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})

	fctx, fcancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(fcancel) // after the parallel subtests
	clipSums, _, err := interop.VideoMD5s(fctx, "-i", clip)
	if err != nil {
		t.Fatal(err)
	}
	frameAt := func(sum string) time.Duration {
		for i, s := range clipSums {
			if s == sum {
				return time.Duration(i) * time.Second / 25
			}
		}
		t.Fatalf("decoded a frame that is not in the clip")
		return 0
	}
	for _, tc := range []struct {
		name   string
		args   []string
		lo, hi time.Duration // clip time of the first frame decoded
	}{
		{"seek_timestamp", []string{"-seek_timestamp", "1", "-ss", "5"}, 4900 * time.Millisecond, 5500 * time.Millisecond},
		{"plain", []string{"-ss", "5"}, 0, 20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append(append([]string{"-rtsp_transport", "tcp"}, tc.args...), "-i", serverURL(s, "live"), "-t", "2")
			sums, took, err := interop.VideoMD5s(fctx, args...)
			if err != nil {
				t.Fatal(err)
			}
			if len(sums) < 40 {
				t.Fatalf("%d frames decoded, want 2 s of them", len(sums))
			}
			at := frameAt(sums[0]) // the clip loops from the window start, tt 0
			t.Logf("%d frames in %v, from clip time %v", len(sums), took.Round(time.Millisecond), at)
			if at < tc.lo || at > tc.hi {
				t.Fatalf("first frame at clip time %v, want %v..%v", at, tc.lo, tc.hi)
			}
		})
	}
}

// loopClip returns the packets of a stored clip looped forever: each loop's
// tt, pn, RTP sequence numbers and timestamps follow on from the last.
func loopClip(t *testing.T, pk []store.Packet, m store.Manifest) func() store.Packet {
	perTrack := make([]int, len(m.Tracks))
	for _, p := range pk {
		perTrack[p.Track]++
	}
	loop, i := 0, 0
	return func() store.Packet {
		if i == len(pk) {
			loop, i = loop+1, 0
		}
		p := pk[i]
		i++
		if loop == 0 {
			return p
		}
		var r rtp.Packet
		if err := r.Unmarshal(p.RTP); err != nil {
			t.Errorf("stored packet: %v", err)
			return p
		}
		r.SequenceNumber += uint16(loop * perTrack[p.Track])
		r.Timestamp += uint32(store.DurationToTicks(time.Duration(loop)*m.Duration, m.Tracks[p.Track].ClockRate))
		raw, err := r.Marshal()
		if err != nil {
			t.Errorf("stored packet: %v", err)
			return p
		}
		p.RTP, p.TT, p.PN = raw, p.TT+time.Duration(loop)*m.Duration, p.PN+uint64(loop*len(pk))
		return p
	}
}
