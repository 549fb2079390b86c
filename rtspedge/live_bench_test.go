package rtspedge

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/store"
)

// The synthetic live source: 25 fps H.264, a key frame every second (a
// STAP-A with SPS and PPS, then 30 FU-A fragments of an IDR slice), P frames
// of 6 FU-A fragments, 1400-byte payloads: 175 packets and about 2 Mbit/s.
const (
	liveFPS        = 25
	liveGOP        = 25 // frames
	liveKeyFrags   = 30
	livePFrags     = 6
	livePayload    = 1400
	liveFrame      = time.Second / liveFPS
	liveGOPSpan    = liveGOP * liveFrame
	livePacketsSec = liveKeyFrags + 1 + (liveGOP-1)*livePFrags // per second
	// liveFeedMax bounds a live source (a benchmark's run is far shorter).
	liveFeedMax = 5 * time.Minute
	// liveWindow is the store's rolling window in the live benchmarks.
	liveWindow = 30 * time.Second
)

// liveServerProcEnv makes the test binary a bare server process of a live
// recording "live" fed in real time (see runLiveServerProc). It is checked in
// init, before TestMain, so startServerProc starts this kind of child when
// the variable is set.
const liveServerProcEnv = "RTSPEDGE_BENCH_LIVE_SERVER"

func init() {
	if os.Getenv(liveServerProcEnv) == "" {
		return
	}
	if err := runLiveServerProc(); err != nil {
		fmt.Fprintln(os.Stderr, "live server process:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// liveManifest is the manifest an origin pull of the live source creates.
func liveManifest(key string) store.Manifest {
	return store.Manifest{Key: key, SDP: []byte(synthSDP), Live: true,
		Tracks: []store.Track{{Control: "trackID=0", Media: "video", PayloadType: 96, ClockRate: 90000, Codec: "H264"}}}
}

// liveFramePayloads returns the RTP payloads of a key frame and of a P
// frame of the live source.
func liveFramePayloads() (key, p [][]byte) {
	sps, _ := base64.StdEncoding.DecodeString("Z0LAHtoCgL/lwEQAAAMABAAAAwDIPFi6gA==")
	pps, _ := base64.StdEncoding.DecodeString("aM48gA==")
	stap := []byte{0x78} // STAP-A, NRI 3
	for _, nal := range [][]byte{sps, pps} {
		stap = append(stap, byte(len(nal)>>8), byte(len(nal)))
		stap = append(stap, nal...)
	}
	frags := func(n int, nalType, slice byte) [][]byte {
		out := make([][]byte, n)
		for k := range out {
			pl := make([]byte, livePayload)
			for i := range pl {
				pl[i] = byte(i*7 + k)
			}
			pl[0] = 0x60 | 28 // FU-A, NRI 3
			pl[1] = nalType
			if k == 0 {
				pl[1] |= 0x80
				pl[2] = slice // first_mb_in_slice 0, slice_type
			}
			if k == n-1 {
				pl[1] |= 0x40
			}
			out[k] = pl
		}
		return out
	}
	// slice_type 7 (I) for the IDR, 5 (P) for the others.
	return append([][]byte{stap}, frags(liveKeyFrags, 5, 0x88)...), frags(livePFrags, 1, 0x98)
}

// feedLive appends the live source to w in real time, frame f at start +
// f/fps (late frames go at once, as a real origin's burst after a stall),
// until ctx ends or liveFeedMax of media is written. Each packet is stored
// as an origin pull stores it: tt from the RTP timestamp, frame type and
// key start from the H.264 payload (metainfo.Tracker), packets counted.
func feedLive(ctx context.Context, w *store.Writer, start time.Time) error {
	return feedLiveLagging(ctx, w, start, nil)
}

// feedLiveLagging is feedLive with frame f appended at start + lagged(f):
// lagged is each frame's wall time after start (nil: f frames' time), so a
// source that falls behind its own clock can be played.
func feedLiveLagging(ctx context.Context, w *store.Writer, start time.Time, lagged func(f int) time.Duration) error {
	if lagged == nil {
		lagged = func(f int) time.Duration { return time.Duration(f) * liveFrame }
	}
	keyFrame, pFrame := liveFramePayloads()
	tracker := metainfo.Tracker{Classify: metainfo.FrameTypeH264}
	seq, ts0 := uint16(rand.Uint32()), rand.Uint32()
	buf := make([]byte, 0, 2048)
	var pn uint64
	timer := time.NewTimer(0)
	defer timer.Stop()
	frames := int(liveFeedMax / liveFrame)
	for f := 0; f < frames; f++ {
		timer.Reset(time.Until(start.Add(lagged(f))))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		payloads := pFrame
		if f%liveGOP == 0 {
			payloads = keyFrame
		}
		ts := ts0 + uint32(f*90000/liveFPS)
		for k, pl := range payloads {
			marker := k == len(payloads)-1
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq,
				Timestamp: ts, SSRC: 0x5eed, Marker: marker}, Payload: pl}
			raw, err := pkt.MarshalTo(buf[:cap(buf)])
			if err != nil {
				return err
			}
			ft, keyStart := tracker.Next(pl, ts, marker)
			p := store.Packet{Track: 0, TT: time.Duration(f) * liveFrame, FT: store.FrameType(ft), PN: pn, RTP: buf[:raw]}
			if keyStart {
				p.Flags |= store.FlagKeyStart
			}
			if err := w.Append(p); err != nil {
				return err
			}
			pn++
			seq++
		}
	}
	return nil
}

// runLiveServerProc serves a live recording "live", fed in real time from
// the start, until stdin closes; it prints "ADDR host:port" once listening.
// The process's CPU is the server's plus the feed's appends (175 a second).
func runLiveServerProc() error {
	st, err := store.Open("", store.Options{InMemory: true, Logger: testkit.Logger(), LiveWindow: liveWindow})
	if err != nil {
		return err
	}
	defer st.Close()
	w, err := st.Create(liveManifest("live"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fed := make(chan error, 1)
	go func() { fed <- feedLive(ctx, w, time.Now()) }()
	recs := &testRecordings{ctx: ctx, st: st, origins: map[string]string{}, errs: map[string]error{},
		filling: map[string]chan struct{}{}, fillErr: map[string]error{}}
	// The server's defaults, as runServerProc.
	s, err := NewServer(ServerConfig{Listen: "127.0.0.1:0", Recordings: recs, Logger: testkit.Logger(), Limits: benchLimits})
	if err != nil {
		cancel()
		<-fed
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopProfile, err := startProcProfile()
	if err != nil {
		cancel()
		<-fed
		<-done
		return err
	}
	defer stopProfile()
	fmt.Printf("ADDR %s\n", s.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	errRun := <-done
	errFeed := <-fed
	_ = w.Finish(store.StatePartial)
	if errFeed != nil && !errors.Is(errFeed, context.Canceled) {
		return fmt.Errorf("live feed: %w", errFeed)
	}
	return errRun
}

// startProcProfile profiles the process when RTSPEDGE_BENCH_CPUPROFILE names
// a file (as runServerProc does).
func startProcProfile() (stop func(), err error) {
	f := os.Getenv("RTSPEDGE_BENCH_CPUPROFILE")
	if f == "" {
		return func() {}, nil
	}
	out, err := os.Create(f)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		_ = out.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = out.Close() }, nil
}

// joinPlayers connects n players to url (DESCRIBE, SETUP over TCP), 16 at
// a time.
func joinPlayers(b *testing.B, url string, n int) []*testPlayer {
	return joinPlayersOver(b, url, n, gortsplib.TransportTCP)
}

// joinPlayersOver is joinPlayers over transport tr.
func joinPlayersOver(b *testing.B, url string, n int, tr gortsplib.Transport) []*testPlayer {
	players := make([]*testPlayer, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range players {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer func() {
				if players[i] == nil {
					failed.Add(1) // newTestPlayer failed the benchmark and ended this goroutine
				}
			}()
			players[i] = newTestPlayer(b, url, tr)
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d players could not connect", n)
	}
	return players
}

// count is how many packets p received so far.
func (p *testPlayer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pkts)
}

// liveFanOut plays the live source to n in-process players over TCP from a
// server in a child process (the live recording fed in real time there),
// lets every player get past its join burst (the key frame and what
// followed it, sent at once), then measures for span: the server process's
// CPU per packet delivered in the span, the players' process's, and the
// sequence gaps of every player over everything it received.
func liveFanOut(b *testing.B, n int, span time.Duration) {
	writev := testkit.WritevPacketCost(b)
	b.Setenv(liveServerProcEnv, "1")
	srv := startServerProc(b, 0)
	url := "rtsp://" + srv.addr + "/live"
	players := joinPlayers(b, url, n)
	for _, p := range players {
		p.play(b, nil)
	}
	for _, p := range players {
		p.waitPackets(b, 1, 10*time.Second)
	}
	// A join sends at most a GOP at once; a second after the last first
	// packet every player is on the real-time pace.
	settle := time.NewTimer(time.Second)
	<-settle.C

	before := make([]int, n)
	for i, p := range players {
		before[i] = p.count()
	}
	srv0, self0 := testkit.ReadProc(b, srv.cmd.Process.Pid), cpuTime(b)
	window := time.NewTimer(span)
	<-window.C
	srv1 := testkit.ReadProc(b, srv.cmd.Process.Pid)
	srvCPU, selfCPU := srv1.CPU-srv0.CPU, cpuTime(b)-self0
	rss := srv.rssMiB(b)
	delivered, live := 0, 0
	want := int(span.Seconds() * livePacketsSec)
	for i, p := range players {
		got := p.count() - before[i]
		delivered += got
		if got >= want*9/10 {
			live++ // kept the stream's pace through the span
		}
		if got == 0 {
			b.Errorf("player %d got no packet in %v: dropped or stalled", i, span)
		}
	}
	gaps, lost := 0, uint64(0)
	for _, p := range players {
		got := p.received()
		for i := 1; i < len(got); i++ {
			if got[i].seq != got[i-1].seq+1 {
				gaps++
			}
		}
		p.mu.Lock()
		lost += p.lost
		p.mu.Unlock()
	}
	if live < n {
		// The players fell behind the stream: the machine lacked the CPU
		// for the fan-out (the players' process needs about as much as the
		// server's). The CPU per packet is still measured, over fewer packets.
		b.Logf("only %d of %d players kept the stream's pace: the machine is loaded", live, n)
	}
	if gaps != 0 || lost != 0 {
		b.Errorf("%d sequence gaps, %d lost packets", gaps, lost)
	}
	perPacket := float64(srvCPU.Nanoseconds()) / 1e3 / float64(max(delivered, 1))
	b.ReportMetric(perPacket, "us/pkt")
	b.ReportMetric(perPacket/(writev.Seconds()*1e6), "×writev")
	b.ReportMetric(writev.Seconds()*1e6, "writev-µs/pkt")
	b.ReportMetric(float64(delivered)/float64(max(srv1.Writes-srv0.Writes, 1)), "pkts/write")
	b.ReportMetric(float64(selfCPU.Nanoseconds())/1e3/float64(max(delivered, 1)), "players-us/pkt")
	b.ReportMetric(float64(live), "players")
	b.ReportMetric(float64(delivered), "pkts")
	b.ReportMetric(float64(gaps), "gaps")
	b.ReportMetric(rss, "server-MiB")
}

// rssMiB is the server process's resident memory.
func (p *serverProc) rssMiB(b *testing.B) float64 { return testkit.ReadProc(b, p.cmd.Process.Pid).RSS }

// BenchmarkLiveFanOut500: one 2 Mbit/s live stream, written into the store
// in real time, played by 500 players over TCP; server CPU per delivered
// packet over 5 s of steady state (target ≤ 6.3 µs), players that kept the
// pace, sequence gaps (must be 0).
func BenchmarkLiveFanOut500(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		liveFanOut(b, 500, 5*time.Second)
	}
}

// BenchmarkLiveFanOut200: the same with 200 players.
func BenchmarkLiveFanOut200(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		liveFanOut(b, 200, 5*time.Second)
	}
}

// startLiveFeed opens an in-memory store with a live recording "live"
// fed in real time (feedLive) until the test ends; it returns the store
// and when the feed started.
func startLiveFeed(tb testing.TB) (*store.Store, time.Time) {
	return startLaggingFeed(tb, nil)
}

// startLaggingFeed is startLiveFeed with the feed's frames appended at
// start + lagged(f) (feedLiveLagging).
func startLaggingFeed(tb testing.TB, lagged func(f int) time.Duration) (*store.Store, time.Time) {
	st, err := store.Open("", store.Options{InMemory: true, Logger: testkit.Logger(), LiveWindow: liveWindow})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	w, err := st.Create(liveManifest("live"))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	fed := make(chan error, 1)
	go func() { fed <- feedLiveLagging(ctx, w, start, lagged) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-fed; err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("live feed: %v", err)
		}
		_ = w.Finish(store.StatePartial)
	})
	return st, start
}

// BenchmarkLivePlayToFirstPacket: PLAY → first RTP packet of a live stream
// written in real time, for 50 players joining one after another at points
// spread over the GOP (the k-th at (7k mod 50)/50 of it plus up to a 50th at
// random). Every first packet must start a key frame (an SPS or IDR, as the
// player's H.264 parser sees it). Reports the median, the 95th percentile
// and the fraction of key-frame starts.
func BenchmarkLivePlayToFirstPacket(b *testing.B) {
	b.ReportAllocs()
	st, start := startLiveFeed(b)
	s := startServer(b, ServerConfig{Recordings: newTestRecordings(b, st)})
	url := serverURL(s, "live")
	const plays, step = 50, 7
	slot := liveGOPSpan / plays
	for b.Loop() {
		var lat []time.Duration
		keyStarts := 0
		for k := 0; k < plays; k++ {
			p := newTestPlayer(b, url, gortsplib.TransportTCP)
			phase := time.Duration(k*step%plays)*slot + rand.N(slot)
			// The next time at that phase of the source's GOP, at least a
			// GOP after the source started (a key frame is stored).
			earliest := max(time.Since(start)+time.Millisecond, liveGOPSpan)
			at := (earliest-phase+liveGOPSpan-1)/liveGOPSpan*liveGOPSpan + phase
			wait := time.NewTimer(time.Until(start.Add(at)))
			<-wait.C
			t0 := time.Now()
			p.play(b, nil)
			got := p.waitPackets(b, 1, 5*time.Second)
			lat = append(lat, got[0].at.Sub(t0))
			if got[0].keyStart {
				keyStarts++
			}
			p.c.Close()
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms/first-median")
		b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "ms/first-p95")
		b.ReportMetric(float64(keyStarts)/plays, "keyframe-starts")
		if keyStarts != plays {
			b.Errorf("%d of %d first packets start a key frame", keyStarts, plays)
		}
	}
}
