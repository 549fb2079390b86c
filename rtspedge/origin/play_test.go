package origin

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
)

// firstPerTrack returns the first received packet of each track.
func firstPerTrack(t *testing.T, pkts []received, tracks int) []rtp.Packet {
	t.Helper()
	out := make([]rtp.Packet, tracks)
	found := make([]bool, tracks)
	for _, r := range pkts {
		if !found[r.track] {
			out[r.track], found[r.track] = r.pkt, true
		}
	}
	for i, f := range found {
		if !f {
			t.Fatalf("no packet on track %d", i)
		}
	}
	return out
}

// checkRTPInfo checks that the PLAY response's RTP-Info gives, for every
// track, the sequence number of its first packet and the RTP time of the
// Range start (npt from) on that track's clock.
func checkRTPInfo(t *testing.T, p *player, playIndex int, c *Clip, from time.Duration, first []rtp.Packet, tts []time.Duration) {
	t.Helper()
	var ri headers.RTPInfo
	p.mu.Lock()
	v := p.responses[base.Play][playIndex].Header["RTP-Info"]
	p.mu.Unlock()
	if err := ri.Unmarshal(v); err != nil {
		t.Fatalf("RTP-Info %v: %v", v, err)
	}
	if len(ri) != c.Tracks() {
		t.Fatalf("RTP-Info has %d entries, want %d", len(ri), c.Tracks())
	}
	for track, e := range ri {
		if !strings.HasSuffix(e.URL, "/trackID="+string(rune('0'+track))) {
			t.Fatalf("RTP-Info url %q", e.URL)
		}
		if e.SequenceNumber == nil || *e.SequenceNumber != first[track].SequenceNumber {
			t.Fatalf("track %d: RTP-Info seq %v, first packet %d", track, e.SequenceNumber, first[track].SequenceNumber)
		}
		want := first[track].Timestamp - uint32(int64((tts[track]-from)/time.Millisecond)*int64(c.clockRate[track])/1000)
		if e.Timestamp == nil || *e.Timestamp != want {
			t.Fatalf("track %d: RTP-Info rtptime %v, want %d", track, e.Timestamp, want)
		}
	}
}

// TestRangeSeek: PLAY with Range npt=10 starts at the key frame at or before
// 10 s, says so in Range, gives matching RTP-Info, and sends the clip from
// there to the end.
func TestRangeSeek(t *testing.T) {
	t.Parallel()
	clip := testClip(t)
	o := sampleOrigin(t)
	p := dial(t, o.Addr(), "sample.ts", map[base.Method]base.Header{
		base.Setup: {"x-RTP-Meta-Info": {"tt;ft;pn;md"}},
		base.Play:  {"Speed": {"8"}},
	})
	if _, err := p.c.Play(&headers.Range{Value: &headers.RangeNPT{Start: 10 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	p.waitEnd(30 * time.Second)
	idx := clip.seek(10 * time.Second)
	key := clip.Packets[idx]
	if !key.KeyStart || key.TT > 10*time.Second || key.TT < 9*time.Second {
		t.Fatalf("seek target %+v", key.TT)
	}
	if got, want := p.header(base.Play, 0, "Range"), "npt="+npt(key.TT)+"-"+npt(clip.Duration); got != want {
		t.Fatalf("Range %q, want %q", got, want)
	}
	got := p.packets()
	if want := len(clip.Packets) - int(idx); len(got) != want {
		t.Fatalf("received %d packets after the seek, want %d", len(got), want)
	}
	f, _ := metainfo.ParseHeader("tt;ft;pn;md")
	var tts []time.Duration
	for track := range 2 {
		for _, r := range got {
			if r.track == track {
				i, err := metainfo.Decode(r.pkt.Payload, f)
				if err != nil {
					t.Fatal(err)
				}
				tts = append(tts, i.TT)
				break
			}
		}
	}
	first := firstPerTrack(t, got, 2)
	v, err := metainfo.Decode(first[0].Payload, f)
	if err != nil {
		t.Fatal(err)
	}
	if v.PN != uint64(idx) || v.FT != metainfo.FrameKey || v.TT != key.TT {
		t.Fatalf("first video packet pn %d ft %d tt %v; want pn %d, key, tt %v", v.PN, v.FT, v.TT, idx, key.TT)
	}
	checkRTPInfo(t, p, 0, clip, key.TT, first, tts)
}

// TestPauseResume: PAUSE stops sending; PLAY without Range resumes at the
// next packet (pn continues), with RTP-Info for it.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	clip := testClip(t)
	o := sampleOrigin(t)
	f, _ := metainfo.ParseHeader("tt;ft;pn;md")
	p := dial(t, o.Addr(), "sample.ts", map[base.Method]base.Header{
		base.Setup: {"x-RTP-Meta-Info": {f.String()}},
	})
	if _, err := p.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("300 packets", 10*time.Second, func() bool { return p.count() >= 300 })
	if _, err := p.c.Pause(); err != nil {
		t.Fatal(err)
	}
	before := p.packets()
	sent := o.sent.Load()
	// Nothing is sent while paused: watch the origin's counter for a while.
	time.Sleep(300 * time.Millisecond)
	if now := o.sent.Load(); now != sent {
		t.Fatalf("%d packets sent while paused", now-sent)
	}
	lastPN := uint64(0)
	for _, r := range before {
		i, err := metainfo.Decode(r.pkt.Payload, f)
		if err != nil {
			t.Fatal(err)
		}
		lastPN = max(lastPN, i.PN)
	}
	// A resume is a PLAY without Range (gortsplib's client always sends one).
	p.mu.Lock()
	p.noRange = true
	p.mu.Unlock()
	if _, err := p.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("packets after resume", 10*time.Second, func() bool { return p.count() >= len(before)+100 })
	after := p.packets()[len(before):]
	var tts []time.Duration
	for track := range 2 {
		for _, r := range after {
			if r.track == track {
				i, _ := metainfo.Decode(r.pkt.Payload, f)
				tts = append(tts, i.TT)
				break
			}
		}
	}
	i, err := metainfo.Decode(after[0].pkt.Payload, f)
	if err != nil {
		t.Fatal(err)
	}
	// The resume continues right after the last packet the player got: the
	// origin's PAUSE answer waited until its session's queue had written
	// every packet handed to it (pn 0 to sent-1), and over TCP they came
	// before the answer.
	if lastPN != sent-1 || i.PN != sent {
		t.Fatalf("resumed at pn %d, the player got up to %d, the origin handed up to %d", i.PN, lastPN, sent-1)
	}
	if got, want := p.header(base.Play, 1, "Range"), "npt="+npt(i.TT)+"-"+npt(clip.Duration); got != want {
		t.Fatalf("resume Range %q, want %q", got, want)
	}
	checkRTPInfo(t, p, 1, clip, i.TT, firstPerTrack(t, after, 2), tts)
	if d, pl := o.Sessions("sample.ts"); d != 1 || pl != 1 {
		t.Fatalf("Sessions = %d, %d; a resume is not a new play", d, pl)
	}
}

// TestSessionsAndHeaders: counts per path, 404 for unknown paths,
// Cache-Control on DESCRIBE and SETUP when configured, 501 for x-Packet-Range.
func TestSessionsAndHeaders(t *testing.T) {
	t.Parallel()
	o := startOrigin(t, Config{
		Media:        map[string][]byte{"a.ts": SampleClip(), "b.ts": SampleClip()},
		CacheControl: map[string]string{"b.ts": "no-cache"},
	})
	a1 := dial(t, o.Addr(), "a.ts", nil)
	a2 := dial(t, o.Addr(), "a.ts", nil)
	b := dial(t, o.Addr(), "b.ts", map[base.Method]base.Header{base.Play: {"x-Packet-Range": {"pn=1-5;url=x"}}})
	for _, p := range []*player{a1, a2} {
		if _, err := p.c.Play(nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.c.Play(nil); err == nil || !strings.Contains(err.Error(), "501") {
		t.Fatalf("PLAY with x-Packet-Range: %v, want 501", err)
	}
	if got := b.header(base.Describe, 0, "Cache-Control"); got != "no-cache" {
		t.Fatalf("DESCRIBE Cache-Control %q", got)
	}
	if got := b.header(base.Setup, 0, "Cache-Control"); got != "no-cache" {
		t.Fatalf("SETUP Cache-Control %q", got)
	}
	if got := a1.header(base.Describe, 0, "Cache-Control"); got != "" {
		t.Fatalf("a.ts has Cache-Control %q", got)
	}
	if !strings.Contains(a1.header(base.Describe, 0, "Content-Type"), "sdp") {
		t.Fatal("DESCRIBE is not SDP")
	}
	if d, pl := o.Sessions("a.ts"); d != 2 || pl != 2 {
		t.Fatalf("a.ts: %d describes, %d plays; want 2, 2", d, pl)
	}
	if d, pl := o.Sessions("/b.ts"); d != 1 || pl != 0 {
		t.Fatalf("b.ts: %d describes, %d plays; want 1, 0", d, pl)
	}
	u, _ := base.ParseURL("rtsp://" + o.Addr() + "/missing.ts")
	if _, res, err := a1.c.Describe(u); err == nil || (res != nil && res.StatusCode != base.StatusNotFound) {
		t.Fatalf("DESCRIBE missing: %v %v", res, err)
	}
	if d, pl := o.Sessions("missing.ts"); d != 0 || pl != 0 {
		t.Fatalf("missing path counted")
	}

	// Last-Modified, and 304 for a DESCRIBE with If-Modified-Since.
	lm := a1.header(base.Describe, 0, "Last-Modified")
	if _, err := http.ParseTime(lm); err != nil {
		t.Fatalf("Last-Modified %q: %v", lm, err)
	}
	var status base.StatusCode
	c := &gortsplib.Client{
		Scheme: "rtsp", Host: o.Addr(),
		OnRequest:  func(r *base.Request) { r.Header["If-Modified-Since"] = base.HeaderValue{lm} },
		OnResponse: func(r *base.Response) { status = r.StatusCode },
	}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, _ = base.ParseURL("rtsp://" + o.Addr() + "/a.ts")
	_, _, _ = c.Describe(u) // the status is what matters
	if status != base.StatusNotModified {
		t.Fatalf("DESCRIBE with If-Modified-Since: status %d, want 304", status)
	}
}

// TestRunStopsEverything: cancelling Run while sessions play ends them and
// Run returns only after the pacers stopped.
func TestRunStopsEverything(t *testing.T) {
	t.Parallel()
	o, err := New(Config{Listen: "127.0.0.1:0", Media: map[string][]byte{"a.ts": SampleClip()}, Logger: testkit.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	p := dial(t, o.Addr(), "a.ts", nil)
	if _, err := p.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("packets", 10*time.Second, func() bool { return p.count() > 10 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	sent := o.sent.Load()
	if err := p.c.Wait(); err == nil {
		t.Fatal("client still connected after the origin stopped")
	}
	if o.sent.Load() != sent {
		t.Fatal("packets sent after Run returned")
	}
	if err := o.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}
