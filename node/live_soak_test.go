//go:build unix

package node_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

const (
	soakRun        = 5 * time.Minute  // real time: the window turns over 15 times
	soakWindow     = 20 * time.Second // cache.live_window
	soakSampleStep = 10 * time.Second
	soakJoinStep   = 2 * time.Second // a player joins this often and stays 3-10 s
)

// soakSample is what the soak test measures of the node at one moment.
type soakSample struct {
	at         time.Duration // since the first player joined
	segments   int           // sealed segments in the live window
	window     int64         // their encoded bytes
	used       int64         // the store's accounted bytes (Usage)
	sealed     int64         // encoded bytes of every segment sealed so far (rtspmesh_store_written_bytes_total)
	rtpBytes   uint64        // the manifest's Bytes: RTP bytes in the window
	span       time.Duration // the manifest's Duration: the window's span
	disk       int64         // bytes allocated on disk under the store dir
	heap       uint64        // the node process's HeapInuse after a GC
	goroutines int           // the node process's
	players    int           // readers of the recording open now
}

func (s soakSample) String() string {
	return fmt.Sprintf("t=%3.0fs segments=%d window=%.2fMB used=%.2fMB sealed=%.1fMB manifest.bytes=%.1fMB span=%.1fs disk=%.1fMB heap=%.1fMB goroutines=%d players=%d",
		s.at.Seconds(), s.segments, mb(s.window), mb(s.used), mb(s.sealed), mb(int64(s.rtpBytes)), s.span.Seconds(),
		mb(s.disk), mb(int64(s.heap)), s.goroutines, s.players)
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// TestLiveMemoryFlat5Min: a node keeps a 20 s window of a live stream for
// 5 minutes of real time while players join every 2 s and stay 3-10 s.
// Once the first window has filled, the window's segments and bytes stay
// within 25% of their size then, the store's disk use stays bounded, the
// heap does not grow with the run, every player receives packets, and no
// player session is left over at the end.
//
// The node runs in a child process (startChildNode) and is measured
// through its admin API and /metrics, as an operator would: its heap and
// goroutines are its own, not those of the other tests this one runs
// beside. The origin and the players stay in this process.
func TestLiveMemoryFlat5Min(t *testing.T) {
	if testing.Short() {
		t.Skip("5 minutes of real time; make test runs it")
	}
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	cfg := nodeConfig(t, org)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Cache.LiveWindow = node.Duration(soakWindow)
	storeDir := filepath.Join(cfg.DataDir, "store")
	n := startChildNode(t, cfg)
	liveURL := "rtsp://" + n.rtsp + "/o/live"
	live := func() (node.StreamStatus, bool) {
		for _, s := range getJSON[[]node.StreamStatus](t, "GET", n.api+"/api/v1/streams", "", "", 200) {
			if s.Path == "o/live" {
				return s, true
			}
		}
		return node.StreamStatus{}, false
	}
	// The store holds this one recording: what it has written is what
	// this one sealed.
	sample := func(at time.Duration) soakSample {
		n.alive(t, "during the soak")
		n.gc(t)
		s := soakSample{at: at, disk: diskUsage(t, storeDir)}
		if in, ok := live(); ok {
			s.segments, s.window, s.rtpBytes = in.Segments, in.StoredBytes, in.Bytes
			s.span = time.Duration(in.Duration * float64(time.Second))
			s.players = in.Players
		}
		m := metricValues(t, n.api, "", "rtspmesh_store_bytes", "rtspmesh_store_written_bytes_total",
			"go_memstats_heap_inuse_bytes", "go_goroutines")
		s.used, s.sealed, s.heap, s.goroutines = int64(m[0]), int64(m[1]), uint64(m[2]), int(m[3])
		return s
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		players  sync.WaitGroup
		mu       sync.Mutex
		failures []error
		joined   int
		received atomic.Int64
	)
	join := func(i int) {
		stay := time.Duration(3+i*5%8) * time.Second // 3..10 s, all of them
		players.Go(func() {
			got, err := playLiveFor(ctx, liveURL, stay)
			received.Add(got)
			if err == nil && got == 0 {
				err = fmt.Errorf("no packet in %s", stay)
			}
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				failures = append(failures, fmt.Errorf("player %d: %w", i, err))
				mu.Unlock()
			}
		})
	}

	start := time.Now()
	join(0)
	joined = 1
	joins := time.NewTicker(soakJoinStep)
	defer joins.Stop()
	samples := time.NewTicker(soakSampleStep)
	defer samples.Stop()
	lastJoin := time.NewTimer(soakRun - 10*time.Second) // the last player leaves by soakRun
	defer lastJoin.Stop()
	end := time.NewTimer(soakRun)
	defer end.Stop()
	var got []soakSample
loop:
	for {
		select {
		case <-joins.C:
			join(joined)
			joined++
		case <-lastJoin.C:
			joins.Stop()
		case <-samples.C:
			s := sample(time.Since(start))
			t.Log(s)
			got = append(got, s)
		case <-end.C:
			break loop
		}
	}
	players.Wait()
	cancel()
	for _, err := range failures {
		t.Error(err)
	}

	// The window filled after soakWindow (plus the first join); the
	// reference is the first sample past that with a full span.
	ref := -1
	for i, s := range got {
		if s.at > soakWindow+5*time.Second && s.span >= soakWindow-2*time.Second {
			ref = i
			break
		}
	}
	if ref < 0 || len(got)-ref < 20 {
		t.Fatalf("the window never filled, or filled too late to watch it: samples %v", got)
	}
	r := got[ref]
	within := func(v, ref int64) bool { return v >= ref*3/4 && v <= ref*5/4 }
	for _, s := range got[ref+1:] {
		if !within(int64(s.segments), int64(r.segments)) || !within(s.window, r.window) || !within(s.used, r.used) ||
			!within(int64(s.rtpBytes), int64(r.rtpBytes)) {
			t.Errorf("the window changed size: at %v %d segments, %d bytes (store %d, manifest %d); at %v %d segments, %d bytes (store %d, manifest %d)",
				r.at, r.segments, r.window, r.used, r.rtpBytes, s.at, s.segments, s.window, s.used, s.rtpBytes)
		}
		// Badger reclaims disk a value-log file (64 MiB) at a time and never
		// the file it is writing, so within one file the store dir grows
		// with what was written: bound it by one file, the window (three
		// times: the live one, and dropped blocks awaiting GC) and LSM slack.
		if maxDisk := 64<<20 + 3*r.window + 16<<20; s.disk > maxDisk {
			t.Errorf("store dir at %v: %.1f MB on disk, above %.1f MB", s.at, mb(s.disk), mb(maxDisk))
		}
	}
	last := got[len(got)-1]
	if last.sealed-r.sealed < int64(last.at-r.at)/int64(soakWindow)*r.window/2 {
		t.Errorf("the live recording stopped growing: %d bytes sealed by %v, %d by %v", r.sealed, r.at, last.sealed, last.at)
	}
	// What the store writes is the stream once, plus keys and headers: not
	// the window again at every seal (a manifest rewritten with its segment
	// list, say). Measured: 1.13 times the sealed segments' bytes.
	if wrote, sealed := last.disk-r.disk, last.sealed-r.sealed; wrote > sealed*3/2+8<<20 {
		t.Errorf("the store dir grew %.1f MB from %v to %v while %.1f MB of segments were sealed: more than 1.5 times",
			mb(wrote), r.at, last.at, mb(sealed))
	}
	// The heap is the node process's, after a GC: compare its floor over
	// the last minute with its floor before, so that a leak (which raises
	// the floor) counts but a busy moment (more players at once, a
	// compaction) does not.
	floor := func(ss []soakSample) uint64 {
		m := ss[0].heap
		for _, s := range ss {
			m = min(m, s.heap)
		}
		return m
	}
	lastMinute := len(got) - int(time.Minute/soakSampleStep)
	if before, after := floor(got[ref:lastMinute]), floor(got[lastMinute:]); after > before+128<<20 {
		t.Errorf("heap floor %.1f MB over the last minute, %.1f MB before: grew more than 128 MB", mb(int64(after)), mb(int64(before)))
	}

	// Every player has left: no session or reader is left over.
	testkit.Eventually(t, 10*time.Second, "no player sessions left", func() bool {
		in, ok := live()
		return n.status(t).Players == 0 && ok && in.Players == 0
	})
	if _, plays := org.Sessions("live"); plays != 1 {
		t.Errorf("origin sessions: %d, want 1 for the whole run", plays)
	}
	t.Logf("%d players joined and left, %d RTP packets delivered to them; reference sample %v", joined, received.Load(), r)
}

// playLiveFor plays url over TCP for stay and returns the RTP packets it
// received.
func playLiveFor(ctx context.Context, rawURL string, stay time.Duration) (int64, error) {
	c, _, err := interop.SetUp(rawURL)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var got atomic.Int64
	c.OnPacketRTPAny(func(*description.Media, format.Format, *rtp.Packet) { got.Add(1) })
	if _, err := c.Play(nil); err != nil {
		return 0, fmt.Errorf("play: %w", err)
	}
	timer := time.NewTimer(stay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	return got.Load(), nil
}

// diskUsage is the space allocated to the files under dir (Badger's value
// log and memtables are sparse files: their apparent size says little).
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // files come and go under compaction
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
