package node_test

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// The node-process benchmarks (issue 15): a node in a child process (this
// test binary again, see childnode_test.go) serving players that run in the
// benchmark's process, so that the RSS, the Go heap and the CPU time
// reported are the node's alone. The stream is a 2 Mbit/s H.264 clip
// (640x360, 25 fps, a key frame a second, constant bit rate) that ffmpeg
// makes for the run, served by the built-in origin in the benchmark's
// process as a 10-minute VOD (the clip looped) and looped as a live stream.
const (
	benchClipDuration = 40 * time.Second
	// benchVODDuration: the VOD is the clip looped to this long, so that
	// 500 players at their own places are each alone in their part of it
	// (a recording of 600 one-second segments), as on a node serving a
	// library; a 40 s clip would have a dozen players in every segment.
	benchVODDuration = 10 * time.Minute
	// benchFillSpeed: the VOD is prefetched at up to this Speed.
	benchFillSpeed = 64
	benchPlayers   = 500
	benchSettle    = 2 * time.Second // after every player's first packet
	benchWindow    = 5 * time.Second // measured
)

// clip2Mbps makes the benchmarks' 2 Mbit/s MPEG-TS clip with ffmpeg.
func clip2Mbps(b *testing.B) []byte {
	return ffmpegTS(b, "-f", "lavfi",
		"-i", "testsrc2=size=640x360:rate=25", "-t", strconv.Itoa(int(benchClipDuration.Seconds())),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-threads", "1",
		"-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "500k", "-x264-params", "nal-hrd=cbr")
}

// loopClip is clip looped to dur with ffmpeg (stream copy, timestamps
// continued).
func loopClip(b *testing.B, clip []byte, dur time.Duration) []byte {
	in := filepath.Join(b.TempDir(), "clip.ts")
	if err := os.WriteFile(in, clip, 0o644); err != nil {
		b.Fatal(err)
	}
	return ffmpegTS(b, "-stream_loop", strconv.Itoa(int(dur/benchClipDuration)), "-i", in,
		"-c", "copy", "-t", strconv.Itoa(int(dur.Seconds())))
}

// ffmpegTS runs ffmpeg with args and returns the MPEG-TS it wrote.
func ffmpegTS(b *testing.B, args ...string) []byte {
	b.Helper()
	out := filepath.Join(b.TempDir(), "out.ts")
	args = append(append([]string{"-v", "error", "-y"}, args...), "-f", "mpegts", out)
	if msg, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v\n%s", err, msg)
	}
	ts, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	return ts
}

// vodMemoryLimit is memory_limit for BenchmarkNodeVOD500: the default,
// auto (which follows the sessions: 56 MiB and 48 KiB a session, 80 MiB
// for its 500 players), unless RTSPMESH_BENCH_MEMORY_LIMIT names another
// (auto, a size, or 0 for none).
func vodMemoryLimit(b *testing.B) node.MemoryLimit {
	s := os.Getenv("RTSPMESH_BENCH_MEMORY_LIMIT")
	if s == "" {
		return node.MemoryLimitAuto
	}
	l, err := node.ParseMemoryLimit(s)
	if err != nil {
		b.Fatalf("RTSPMESH_BENCH_MEMORY_LIMIT: %v", err)
	}
	return l
}

// benchNode starts the origin with the clip (VOD "v.ts", the clip looped
// to benchVODDuration; live "live") and a node in a child process in front
// of it, with its mesh on loopback and the per-address limits
// (connections, sessions, DESCRIBEs a second) raised for benchPlayers
// players from one address, and memory_limit memoryLimit.
func benchNode(b *testing.B, memoryLimit node.MemoryLimit) (*childNode, *origin.Origin) {
	b.Helper()
	clip := clip2Mbps(b)
	long := loopClip(b, clip, benchVODDuration)
	org := startOrigin(b, func(c *origin.Config) {
		c.Media = map[string][]byte{"v.ts": long}
		c.Live = map[string][]byte{"live": clip}
		c.MaxSpeed = benchFillSpeed
	})
	cfg := childNodeConfig(b.TempDir(), org.Addr())
	speed := float64(benchFillSpeed)
	cfg.Origins[0].Speed = &speed
	cfg.Mesh.Enabled = true
	cfg.Mesh.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Mesh.MDNS = false
	cfg.RTSP.MaxConnections, cfg.RTSP.MaxConnectionsPerAddress = 2000, 2000
	cfg.RTSP.MaxSessions, cfg.RTSP.MaxSessionsPerAddress = 2000, 2000
	cfg.Fills.DescribesPerAddress = 10000
	cfg.MemoryLimit = memoryLimit
	return startChildNode(b, cfg), org
}

// benchPlayer is a gortsplib player over TCP that counts its RTP packets
// and the breaks in their sequence numbers.
type benchPlayer struct {
	c       *gortsplib.Client
	packets atomic.Int64
	gaps    atomic.Int64
	first   chan struct{} // closed at the first packet
	last    uint16        // touched by the client's reader goroutine only
}

// joinBenchPlayers sets n players of url up, 16 at a time.
func joinBenchPlayers(b *testing.B, url string, n int) []*benchPlayer {
	b.Helper()
	players := make([]*benchPlayer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range players {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := interop.SetUp(url)
			if err != nil {
				errs[i] = err
				return
			}
			p := &benchPlayer{c: c, first: make(chan struct{})}
			c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
				switch n := p.packets.Add(1); {
				case n == 1:
					close(p.first)
				case pkt.SequenceNumber != p.last+1:
					p.gaps.Add(1)
				}
				p.last = pkt.SequenceNumber
			})
			players[i] = p
		}()
	}
	wg.Wait()
	b.Cleanup(func() {
		for _, p := range players {
			if p != nil {
				p.c.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			b.Fatalf("player %d: %v", i, err)
		}
	}
	return players
}

// waitFirst waits for every player's first packet.
func waitFirst(b *testing.B, players []*benchPlayer, within time.Duration) {
	b.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for i, p := range players {
		select {
		case <-p.first:
		case <-timer.C:
			b.Fatalf("player %d has no packet %v after PLAY", i, within)
		}
	}
}

// measureNode waits settle, then measures the node over window while the
// players play: the node process's CPU per packet delivered in the window,
// its RSS at the end and its peak, its Go heap and stacks after a GC, the
// players that kept pace and the sequence gaps of every player. A player
// keeps pace when it got at least 90 % of what the stream had over the
// window: the growth of source, the packets of the stream so far (the live
// recording's, or the VOD's rate times the time). writev is the raw writev
// floor measured in this run (testkit.WritevPacketCost).
func measureNode(b *testing.B, n *childNode, players []*benchPlayer, source func() float64, writev time.Duration) {
	b.Helper()
	pause := time.NewTimer(benchSettle)
	<-pause.C
	before := make([]int64, len(players))
	for i, p := range players {
		before[i] = p.packets.Load()
	}
	gc0 := n.window(b, "start")
	p0, s0 := testkit.ReadProc(b, n.Pid()), source()
	pause.Reset(benchWindow)
	<-pause.C
	p1, s1 := testkit.ReadProc(b, n.Pid()), source()
	gc1 := n.window(b, "end")
	delivered, paced, gaps := int64(0), 0, int64(0)
	want := int64((s1 - s0) * 9 / 10)
	for i, p := range players {
		got := p.packets.Load() - before[i]
		delivered += got
		gaps += p.gaps.Load()
		if got >= want {
			paced++
		}
	}
	m := n.mem(b)
	perPacket := (p1.CPU - p0.CPU).Seconds() * 1e6 / float64(max(delivered, 1))
	b.ReportMetric(perPacket, "node-µs/pkt")
	b.ReportMetric(perPacket/(writev.Seconds()*1e6), "×writev")
	b.ReportMetric(writev.Seconds()*1e6, "writev-µs/pkt")
	b.ReportMetric(float64(delivered)/float64(max(p1.Writes-p0.Writes, 1)), "pkts/write")
	b.ReportMetric(p1.RSS, "node-RSS-MiB")
	b.ReportMetric(p1.PeakRSS, "node-peak-RSS-MiB")
	b.ReportMetric(p1.FileRSS, "node-file-RSS-MiB")
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(m.StackInuse)/(1<<20), "stacks-MiB")
	b.ReportMetric(float64(m.Goroutines), "goroutines")
	b.ReportMetric(float64(gc1-gc0), "gc-cycles")
	b.ReportMetric(float64(paced), "players-at-pace")
	b.ReportMetric(float64(gaps), "gaps")
	if paced < len(players) {
		b.Logf("%d of %d players kept the stream's pace (%d packets in %v): the machine is loaded", paced, len(players), want, benchWindow)
	}
	if gaps != 0 {
		b.Errorf("%d sequence gaps", gaps)
	}
}

// BenchmarkNodeIdle: the RSS of a node process with its mesh up and an
// origin configured, before any player (target ≤ 40 MiB).
func BenchmarkNodeIdle(b *testing.B) {
	for b.Loop() {
		n, _ := benchNode(b, 0)
		m := n.mem(b)
		ps := testkit.ReadProc(b, n.Pid())
		b.ReportMetric(ps.RSS, "node-RSS-MiB")
		b.ReportMetric(ps.FileRSS, "node-file-RSS-MiB")
		b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(m.Goroutines), "goroutines")
	}
}

// BenchmarkNodeVOD500: 500 players of one cached 10-minute 2 Mbit/s VOD,
// each from its own random position, on a node in a child process (target
// ≤ 100 MiB RSS; CPU per delivered packet against the raw writev floor).
func BenchmarkNodeVOD500(b *testing.B) {
	for b.Loop() {
		n, _ := benchNode(b, vodMemoryLimit(b))
		writev := testkit.WritevPacketCost(b)
		ans := getJSON[node.PrefetchAnswer](b, "POST", n.api+"/api/v1/prefetch", "", `{"path":"o/v.ts"}`, 202)
		var st node.StreamStatus
		testkit.Eventually(b, benchVODDuration/4+time.Minute, "the VOD prefetched", func() bool {
			st = getJSON[node.StreamStatus](b, "GET", n.api+"/api/v1/streams/"+ans.Stream.ID, "", "", 200)
			return st.State == "complete"
		})
		players := joinBenchPlayers(b, "rtsp://"+n.rtsp+"/o/v.ts", benchPlayers)
		last := benchVODDuration - benchSettle - benchWindow - 5*time.Second
		for i, p := range players {
			from := rand.N(last).Seconds()
			if _, err := p.c.Play(&headers.Range{Value: &headers.RangeNPT{Start: time.Duration(from * float64(time.Second))}}); err != nil {
				b.Fatalf("player %d: play from %.1fs: %v", i, from, err)
			}
		}
		waitFirst(b, players, 10*time.Second)
		perSec, start := float64(st.Packets)/st.Duration, time.Now()
		measureNode(b, n, players, func() float64 { return perSec * time.Since(start).Seconds() }, writev)
	}
}

// BenchmarkNodeLive500: 500 players of one 2 Mbit/s live stream that the
// node pulls from the origin (target ≤ 100 MiB RSS).
func BenchmarkNodeLive500(b *testing.B) {
	for b.Loop() {
		nodeLive(b, benchPlayers)
	}
}

// BenchmarkNodeLive1000: the same with 1000 players (target: every player
// at pace, no gap).
func BenchmarkNodeLive1000(b *testing.B) {
	for b.Loop() {
		nodeLive(b, 1000)
	}
}

// nodeLive plays the live stream to count players through a node in a child
// process and measures it (measureNode).
func nodeLive(b *testing.B, count int) {
	n, _ := benchNode(b, 0)
	writev := testkit.WritevPacketCost(b)
	players := joinBenchPlayers(b, "rtsp://"+n.rtsp+"/o/live", count)
	for i, p := range players {
		if _, err := p.c.Play(nil); err != nil {
			b.Fatalf("player %d: play: %v", i, err)
		}
	}
	waitFirst(b, players, 10*time.Second)
	stored := func() float64 {
		for _, st := range getJSON[[]node.StreamStatus](b, "GET", n.api+"/api/v1/streams", "", "", 200) {
			if st.Live {
				return float64(st.Packets)
			}
		}
		b.Fatal("no live stream on the node")
		return 0
	}
	measureNode(b, n, players, stored, writev)
}
