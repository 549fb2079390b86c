package origin

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtcp"
)

// TestByeAfterGrace: the end of a VOD play over TCP is, on every track, an
// SR + SDES + BYE of that track's SSRC (the one its SETUP answer and RTP
// packets carry), after the last RTP packet of every track, and at least
// byeGrace after the last packet's due time. GStreamer's rtspsrc over TCP
// did not end by itself, now and then, when the BYE came right after the
// last packet (byeGrace says why).
func TestByeAfterGrace(t *testing.T) {
	t.Parallel()
	clip := testClip(t)
	o := sampleOrigin(t)
	p := dial(t, o.Addr(), "sample.ts", nil)
	// The last two seconds or so: from the key frame at or before.
	from := clip.Duration - 2*time.Second
	idx := clip.seek(from)
	start := clip.Packets[idx].TT
	// Before the PLAY: the origin's pacing clock starts later, at its answer.
	sent := time.Now()
	if _, err := p.c.Play(&headers.Range{Value: &headers.RangeNPT{Start: from}}); err != nil {
		t.Fatal(err)
	}
	p.waitEnd(30 * time.Second)

	p.mu.Lock()
	pkts, rtcps := p.pkts, p.rtcps
	p.mu.Unlock()
	if want := len(clip.Packets) - int(idx); len(pkts) != want {
		t.Fatalf("received %d packets, want %d", len(pkts), want)
	}
	tracks := clip.Tracks()
	ssrc := make([]uint32, tracks)
	for _, r := range pkts {
		ssrc[r.track] = r.pkt.SSRC
	}
	for track := range tracks {
		var th headers.Transport
		if err := th.Unmarshal(base.HeaderValue{p.header(base.Setup, track, "Transport")}); err != nil {
			t.Fatalf("SETUP %d answer's Transport: %v", track, err)
		}
		if th.SSRC == nil || *th.SSRC != ssrc[track] {
			t.Fatalf("track %d: SETUP answer's ssrc %v, RTP packets' %08x", track, th.SSRC, ssrc[track])
		}
	}

	last := pkts[len(pkts)-1]
	due := sent.Add(clip.Packets[len(clip.Packets)-1].TT - start) // at the earliest
	byes := make([]bool, tracks)
	for i, r := range rtcps {
		bye, ok := r.pkt.(*rtcp.Goodbye)
		if !ok {
			continue
		}
		if byes[r.track] {
			t.Fatalf("track %d: a second BYE", r.track)
		}
		byes[r.track] = true
		if len(bye.Sources) != 1 || bye.Sources[0] != ssrc[r.track] {
			t.Fatalf("track %d: BYE of %x, its RTP packets' SSRC is %08x", r.track, bye.Sources, ssrc[r.track])
		}
		// The compound: SR, SDES, BYE of the track's SSRC.
		if i < 2 {
			t.Fatalf("track %d: BYE without the SR and SDES before it", r.track)
		}
		sr, ok1 := rtcps[i-2].pkt.(*rtcp.SenderReport)
		sdes, ok2 := rtcps[i-1].pkt.(*rtcp.SourceDescription)
		if !ok1 || !ok2 || rtcps[i-2].track != r.track || rtcps[i-1].track != r.track ||
			sr.SSRC != ssrc[r.track] || len(sdes.Chunks) != 1 || sdes.Chunks[0].Source != ssrc[r.track] {
			t.Fatalf("track %d: the BYE's compound is %T, %T, BYE, want SR + SDES of SSRC %08x", r.track, rtcps[i-2].pkt, rtcps[i-1].pkt, ssrc[r.track])
		}
		if r.at.Before(last.at) {
			t.Fatalf("track %d: BYE before the last RTP packet", r.track)
		}
		if gap := r.at.Sub(due); gap < byeGrace {
			t.Fatalf("track %d: the BYE came %v after the last packet's due time, want %v or more", r.track, gap, byeGrace)
		}
		t.Logf("track %d: BYE %v after the last packet's due time, %v after it arrived", r.track,
			r.at.Sub(due).Round(time.Millisecond), r.at.Sub(last.at).Round(time.Millisecond))
	}
}
