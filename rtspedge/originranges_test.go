package rtspedge

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// pullRanged pulls url into st under key with PullRanges at parallelism
// n, and says how long it took and how many sessions it opened.
func pullRanged(t *testing.T, st *store.Store, key, url string, n int) (time.Duration, int) {
	t.Helper()
	req := OriginRequest{URL: url, AskMetaInfo: true, Timeout: 5 * time.Second, Logger: testkit.Logger()}
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
	sessions := 1
	err = PullRanges(t.Context(), o, w, RangePull{Parallelism: n, Logger: testkit.Logger(),
		Open: func(ctx context.Context) (*OriginSession, func(), error) {
			o, err := OpenOrigin(ctx, req)
			if err == nil {
				mu.Lock()
				sessions++
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
	return time.Since(start), sessions
}

// samePulls fails unless got holds, per track, the packets of want in
// order: payload, marker, payload type, and sequence numbers and
// timestamps that step alike; tt within a millisecond.
func samePulls(t *testing.T, got, want []store.Packet, tracks int) {
	t.Helper()
	for tr := range tracks {
		g, w := ofTrack(t, got, tr), ofTrack(t, want, tr)
		if len(g) != len(w) {
			t.Errorf("track %d: %d packets, a single pull %d", tr, len(g), len(w))
		}
		for i := range min(len(g), len(w)) {
			if d := diffPacket(g[i], w[i], g[0], w[0]); d != "" {
				t.Fatalf("track %d packet %d of %d: %s", tr, i, len(w), d)
			}
		}
	}
}

type headerPacket struct {
	h  rtp.Header
	pl string
	tt time.Duration
	ft store.FrameType
	fl uint8
}

func ofTrack(t *testing.T, pkts []store.Packet, track int) []headerPacket {
	var out []headerPacket
	for _, p := range pkts {
		if int(p.Track) != track {
			continue
		}
		var hp headerPacket
		n, err := hp.h.Unmarshal(p.RTP)
		if err != nil {
			t.Fatal(err)
		}
		hp.pl, hp.tt, hp.ft, hp.fl = string(p.RTP[n:]), p.TT, p.FT, p.Flags
		out = append(out, hp)
	}
	return out
}

func diffPacket(g, w, g0, w0 headerPacket) string {
	switch {
	case g.pl != w.pl:
		return fmt.Sprintf("payload of %d bytes, want %d bytes", len(g.pl), len(w.pl))
	case g.h.Marker != w.h.Marker || g.h.PayloadType != w.h.PayloadType:
		return "marker or payload type differ"
	case g.h.SequenceNumber-g0.h.SequenceNumber != w.h.SequenceNumber-w0.h.SequenceNumber:
		return fmt.Sprintf("sequence number step %d, want %d", g.h.SequenceNumber-g0.h.SequenceNumber, w.h.SequenceNumber-w0.h.SequenceNumber)
	case g.h.Timestamp-g0.h.Timestamp != w.h.Timestamp-w0.h.Timestamp:
		return fmt.Sprintf("timestamp step %d, want %d", g.h.Timestamp-g0.h.Timestamp, w.h.Timestamp-w0.h.Timestamp)
	case g.h.SSRC != g0.h.SSRC:
		return "SSRC changed"
	case absDur(g.tt-w.tt) > time.Millisecond:
		return fmt.Sprintf("tt %v, want %v", g.tt, w.tt)
	case g.ft != w.ft || g.fl != w.fl:
		return fmt.Sprintf("frame type %d flags %d, want %d %d", g.ft, g.fl, w.ft, w.fl)
	}
	return ""
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
	wg.Go(func() { took, sessions = pullRanged(t, st, "ranged", gst.URL("clip"), 4) })
	wg.Wait()
	t.Logf("4 ranges: %v, %d sessions", took, sessions)
	m, _ := st.Manifest("ranged")
	samePulls(t, readAll(t, st, "ranged"), readAll(t, st, "single"), len(m.Tracks))
	if sessions != 4 || took > clip.Length/2 {
		t.Fatalf("%d sessions took %v for a %v clip", sessions, took, clip.Length)
	}
}

// TestPullRangesOrigin: the built-in origin (meta-info: the origin's own
// tt and packet numbers) asked for no Speed: 4 ranges store what a
// single pull stores.
func TestPullRangesOrigin(t *testing.T) {
	t.Parallel()
	clip := interop.Clip{Name: "h264-aac-12s.ts", Video: "h264", Audio: "aac", Length: 12 * time.Second}
	ts, err := os.ReadFile(clip.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	org, _ := startOrigin(t, origin.Config{Media: map[string][]byte{"clip.ts": ts}})
	st := newStore(t)
	var wg sync.WaitGroup
	var took time.Duration
	var sessions int
	wg.Go(func() { fill(t, st, "single", originURL(org, "clip.ts"), OriginRequest{AskMetaInfo: true}) })
	wg.Go(func() { took, sessions = pullRanged(t, st, "ranged", originURL(org, "clip.ts"), 4) })
	wg.Wait()
	t.Logf("4 ranges: %v, %d sessions", took, sessions)
	got, want := readAll(t, st, "ranged"), readAll(t, st, "single")
	m, _ := st.Manifest("ranged")
	samePulls(t, got, want, len(m.Tracks))
	for i := range min(len(got), len(want)) {
		if got[i].PN != want[i].PN || got[i].Flags&store.FlagMetaInfo == 0 {
			t.Fatalf("packet %d: pn %d flags %d, want the origin's pn %d", i, got[i].PN, got[i].Flags, want[i].PN)
		}
	}
	if sessions != 4 || took > clip.Length/2 {
		t.Fatalf("%d sessions took %v for a %v clip", sessions, took, clip.Length)
	}
}
