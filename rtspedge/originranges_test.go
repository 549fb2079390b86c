package rtspedge

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// rangedPull says how pullRanged pulls.
type rangedPull struct {
	n         int     // RangePull.Parallelism
	maxBuffer int64   // RangePull.MaxBuffer; 0: the default
	speed     float64 // OriginRequest.Speed of the first session; 0: none
	rateLimit int64   // OriginRequest.RateLimit (nothing throttles the connection)
	rangesURL string  // what the ranges after the first play; "": the same URL
}

// pulled is what a pullRanged did.
type pulled struct {
	took     time.Duration
	sessions int       // the sessions that played, the first included
	speeds   []float64 // the Speed each range after the first asked for (0: none)
}

// pullRanged pulls url into st under key with PullRanges as p says.
func pullRanged(t *testing.T, st *store.Store, key, url string, p rangedPull) pulled {
	t.Helper()
	req := OriginRequest{URL: url, AskMetaInfo: true, Timeout: 5 * time.Second, Logger: testkit.Logger(),
		Speed: p.speed, RateLimit: p.rateLimit}
	other := req
	if p.rangesURL != "" {
		other.URL = p.rangesURL
	}
	start := time.Now()
	o, err := OpenOrigin(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	m := o.Manifest()
	m.Key = key
	w, err := st.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var more []*OriginSession
	err = PullRanges(t.Context(), o, w, RangePull{Parallelism: p.n, Logger: testkit.Logger(), MaxBuffer: p.maxBuffer,
		Open: func(ctx context.Context) (*OriginSession, func(), error) {
			o, err := OpenOrigin(ctx, other)
			if err == nil {
				mu.Lock()
				more = append(more, o)
				mu.Unlock()
			}
			return o, func() {}, err
		}})
	if err != nil {
		_ = w.Finish(store.StatePartial)
		t.Fatalf("PullRanges: %v", err)
	}
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	res := pulled{took: time.Since(start), sessions: 1}
	for _, o := range more {
		o.mu.Lock()
		if o.ran { // a session a split opened and then found it had no use for never plays
			res.sessions++
			res.speeds = append(res.speeds, o.speed)
		}
		o.mu.Unlock()
	}
	return res
}

// samePulls fails unless got holds, per track, the packets of want
// (testkit.SameRTP), with tt within a millisecond, frame types and flags
// alike.
func samePulls(t *testing.T, got, want []store.Packet, tracks int) {
	t.Helper()
	for tr := range tracks {
		g, w := ofTrack(got, tr), ofTrack(want, tr)
		var graw, wraw [][]byte
		for i := range g {
			graw = append(graw, g[i].RTP)
		}
		for i := range w {
			wraw = append(wraw, w[i].RTP)
		}
		if err := testkit.SameRTP(graw, wraw); err != nil {
			t.Fatalf("track %d: %v", tr, err)
		}
		for i := range g {
			if absDur(g[i].TT-w[i].TT) > time.Millisecond || g[i].FT != w[i].FT || g[i].Flags != w[i].Flags {
				t.Fatalf("track %d packet %d: tt %v ft %d flags %d, want %v %d %d", tr, i, g[i].TT, g[i].FT, g[i].Flags, w[i].TT, w[i].FT, w[i].Flags)
			}
		}
	}
}

func ofTrack(pkts []store.Packet, track int) []store.Packet {
	var out []store.Packet
	for _, p := range pkts {
		if int(p.Track) == track {
			out = append(out, p)
		}
	}
	return out
}

// TestPullRangesGst: gst-rtsp-server grants no usable Speed; a 12 s clip
// pulled as 4 ranges at once is stored as a single pull stores it, per
// track, and in about a quarter of the time.
func TestPullRangesGst(t *testing.T) {
	t.Parallel()
	clip := interop.Clip{Name: "h264-aac-12s.mp4", Video: "h264", Audio: "aac", Length: 12 * time.Second}
	gst := interop.StartGstServer(t, interop.Mount{Path: "clip", Pipeline: clip.Pipeline(clip.Path(t))})
	st := newStore(t)
	var wg sync.WaitGroup
	var took time.Duration
	var sessions int
	wg.Go(func() { fill(t, st, "single", gst.URL("clip"), OriginRequest{AskMetaInfo: true}) })
	wg.Go(func() {
		p := pullRanged(t, st, "ranged", gst.URL("clip"), rangedPull{n: 4})
		took, sessions = p.took, p.sessions
	})
	wg.Wait()
	t.Logf("4 ranges: %v, %d sessions", took, sessions)
	m, _ := st.Manifest("ranged")
	samePulls(t, readAll(t, st, "ranged"), readAll(t, st, "single"), len(m.Tracks))
	if sessions != 4 || took > clip.Length/2 {
		t.Fatalf("%d sessions took %v for a %v clip", sessions, took, clip.Length)
	}
}

// rangesClip is the clip the built-in origin serves to range pulls.
var rangesClip = interop.Clip{Name: "h264-aac-12s.ts", Video: "h264", Audio: "aac", Length: 12 * time.Second}

// startClipOrigin runs the built-in origin serving clip at clip.ts.
func startClipOrigin(t *testing.T, clip interop.Clip) (*origin.Origin, func()) {
	ts, err := os.ReadFile(clip.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	return startOrigin(t, origin.Config{Media: map[string][]byte{"clip.ts": ts}})
}

// TestPullRangesBounded: 2 ranges at once held to a MaxBuffer of about 2 s
// of the stream: the second, running on from 2 s after the first, is split
// again once it is stored, and so on: still what a single pull stores.
func TestPullRangesBounded(t *testing.T) {
	t.Parallel()
	org, _ := startClipOrigin(t, rangesClip)
	o, err := OpenOrigin(t.Context(), OriginRequest{URL: originURL(org, "clip.ts")})
	if err != nil {
		t.Fatal(err)
	}
	bitrate := sdpBitrate(o.ssd)
	o.Close()
	if bitrate <= 0 {
		t.Fatal("the built-in origin declares no bitrate")
	}
	st := newStore(t)
	var wg sync.WaitGroup
	var sessions int
	wg.Go(func() { fill(t, st, "single", originURL(org, "clip.ts"), OriginRequest{AskMetaInfo: true}) })
	wg.Go(func() {
		sessions = pullRanged(t, st, "ranged", originURL(org, "clip.ts"), rangedPull{n: 2, maxBuffer: int64(2 * bitrate / 8)}).sessions
	})
	wg.Wait()
	m, _ := st.Manifest("ranged")
	samePulls(t, readAll(t, st, "ranged"), readAll(t, st, "single"), len(m.Tracks))
	t.Logf("%d sessions", sessions)
	if sessions < 3 {
		t.Fatalf("%d sessions: the rest was not split again", sessions)
	}
}

// TestPullRangesOrigin: the built-in origin (meta-info: the origin's own
// tt and packet numbers): 4 ranges store what a single pull stores, each
// at the Speed the origin granted the first session. Asked for no Speed,
// a 12 s clip takes less than half its length; at Speed 8, a 24 s clip
// less than a sixth (4 ranges at real time take 6 s: what each range
// asked for shows the speed, the bound leaves a margin for a loaded
// machine; the longer clip leaves the split 2 s to open its sessions
// before the rest is too short for 4 ranges of rangeMin); with a
// RateLimit of 16 times the bitrate, 2 ranges at 8.
func TestPullRangesOrigin(t *testing.T) {
	t.Parallel()
	long := interop.Clip{Name: "h264-aac-24s.ts", Video: "h264", Audio: "aac", Length: 24 * time.Second}
	org, _ := startClipOrigin(t, rangesClip)
	longOrg, _ := startClipOrigin(t, long)
	o, err := OpenOrigin(t.Context(), OriginRequest{URL: originURL(org, "clip.ts")})
	if err != nil {
		t.Fatal(err)
	}
	bitrate := sdpBitrate(o.ssd)
	o.Close()
	for _, tc := range []struct {
		name      string
		org       *origin.Origin
		clip      interop.Clip
		speed     float64
		rateLimit int64
		sessions  int
		within    time.Duration
	}{
		{"no Speed", org, rangesClip, 0, 0, 4, rangesClip.Length / 2},
		{"Speed 8", longOrg, long, 8, 0, 4, long.Length / 6},
		{"Speed 8 within rate_limit", org, rangesClip, 8, int64(16 * bitrate), 2, rangesClip.Length / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			var wg sync.WaitGroup
			var p pulled
			wg.Go(func() {
				fill(t, st, "single", originURL(tc.org, "clip.ts"), OriginRequest{AskMetaInfo: true, Speed: tc.speed})
			})
			wg.Go(func() {
				p = pullRanged(t, st, "ranged", originURL(tc.org, "clip.ts"), rangedPull{n: 4, speed: tc.speed, rateLimit: tc.rateLimit})
			})
			wg.Wait()
			t.Logf("%d ranges: %v for a %v clip, Speed asked %v", p.sessions, p.took, tc.clip.Length, p.speeds)
			got, want := readAll(t, st, "ranged"), readAll(t, st, "single")
			m, _ := st.Manifest("ranged")
			samePulls(t, got, want, len(m.Tracks))
			for i := range min(len(got), len(want)) {
				if got[i].PN != want[i].PN || got[i].Flags&store.FlagMetaInfo == 0 {
					t.Fatalf("packet %d: pn %d flags %d, want the origin's pn %d", i, got[i].PN, got[i].Flags, want[i].PN)
				}
			}
			for _, sp := range p.speeds {
				if sp != tc.speed {
					t.Fatalf("ranges asked for Speed %v, want %v each", p.speeds, tc.speed)
				}
			}
			if p.sessions != tc.sessions || p.took > tc.within {
				t.Fatalf("%d sessions took %v for a %v clip; want %d within %v", p.sessions, p.took, tc.clip.Length, tc.sessions, tc.within)
			}
		})
	}
}

// TestPullRangesDisagree: ranges whose packets are not the first range's
// (here another clip, with the same tracks) are given up once the first
// range is 1 s past where the second said it starts: the pull stores what
// the first range got, and goes on with one session from there.
func TestPullRangesDisagree(t *testing.T) {
	t.Parallel()
	ts, err := os.ReadFile(rangesClip.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	org, _ := startOrigin(t, origin.Config{Media: map[string][]byte{"clip.ts": ts, "other.ts": origin.SampleClip()}})
	st := newStore(t)
	var wg sync.WaitGroup
	var took time.Duration
	wg.Go(func() { fill(t, st, "single", originURL(org, "clip.ts"), OriginRequest{AskMetaInfo: true}) })
	wg.Go(func() {
		took = pullRanged(t, st, "ranged", originURL(org, "clip.ts"), rangedPull{n: 4, rangesURL: originURL(org, "other.ts")}).took
	})
	wg.Wait()
	// A resumed session keeps its own RTP bases (as any resumed fill):
	// payloads and tt are the single pull's.
	got, want := readAll(t, st, "ranged"), readAll(t, st, "single")
	m, _ := st.Manifest("ranged")
	for tr := range len(m.Tracks) {
		g, w := ofTrack(got, tr), ofTrack(want, tr)
		if len(g) != len(w) {
			t.Fatalf("track %d: %d packets, want %d", tr, len(g), len(w))
		}
		for i := range g {
			if string(g[i].RTP[12:]) != string(w[i].RTP[12:]) || absDur(g[i].TT-w[i].TT) > time.Millisecond {
				t.Fatalf("track %d packet %d: tt %v, want %v, payloads alike %v", tr, i, g[i].TT, w[i].TT, string(g[i].RTP[12:]) == string(w[i].RTP[12:]))
			}
		}
	}
	if _, plays := org.Sessions("clip.ts"); plays != 3 {
		t.Fatalf("%d PLAYs of clip.ts, want 3: the single pull, the first range, the one session after", plays)
	}
	t.Logf("given up: %v for a %v clip", took, rangesClip.Length)
}
