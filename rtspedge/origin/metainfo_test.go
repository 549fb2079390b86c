package origin

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
)

// TestMetaInfo negotiates x-RTP-Meta-Info with a gortsplib client (compressed
// ids for tt and ft) and checks that every packet carries the tt/ft/pn/sq/md
// that Packetize computed for it, at the requested Speed.
func TestMetaInfo(t *testing.T) {
	t.Parallel()
	clip := testClip(t)
	o := sampleOrigin(t)
	p := dial(t, o.Addr(), "sample.ts", map[base.Method]base.Header{
		base.Setup: {"x-RTP-Meta-Info": {"tt=0;ft=1;pn;sq;pp;md"}},
		base.Play:  {"Speed": {"8"}},
	})
	wantEcho := []string{"tt=0;ft=1;pn;sq;md", "tt=0;pn;sq;md"} // no ft for audio, no pp at all
	fields := make([]metainfo.Fields, 2)
	for track, want := range wantEcho {
		got := p.header(base.Setup, track, "X-Rtp-Meta-Info")
		if got != want {
			t.Fatalf("SETUP %d echoed x-RTP-Meta-Info %q, want %q", track, got, want)
		}
		f, err := metainfo.ParseHeader(got)
		if err != nil {
			t.Fatal(err)
		}
		fields[track] = f
	}
	if _, err := p.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	if got := p.header(base.Play, 0, "Speed"); got != "8.000" {
		t.Fatalf("PLAY answered Speed %q, want 8.000", got)
	}
	p.waitEnd(30 * time.Second)

	got := p.packets()
	if len(got) != len(clip.Packets) {
		t.Fatalf("received %d packets, want %d", len(got), len(clip.Packets))
	}
	// The pace is that of the packets, first to last (the BYE follows the
	// last by design, and a connection's start-up is not the pace).
	if span, want := got[len(got)-1].at.Sub(got[0].at), clip.Duration/8; span < want*85/100 || span > want*11/10 {
		t.Fatalf("play at speed 8: packets over %v, want about %v", span, want)
	}
	seen := make([]bool, len(clip.Packets))
	for _, r := range got {
		info, err := metainfo.Decode(r.pkt.Payload, fields[r.track])
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !info.HasTT || !info.HasPN || !info.HasSQ || !info.HasMD || info.HasFT != (r.track == 0) {
			t.Fatalf("track %d packet has fields %+v", r.track, info)
		}
		if info.PN >= uint64(len(clip.Packets)) || seen[info.PN] {
			t.Fatalf("pn %d out of range or twice", info.PN)
		}
		seen[info.PN] = true
		want := clip.Packets[info.PN]
		var wh rtp.Packet
		if err := wh.Unmarshal(want.RTP); err != nil {
			t.Fatal(err)
		}
		switch {
		case int(want.Track) != r.track:
			t.Fatalf("pn %d on track %d, want %d", info.PN, r.track, want.Track)
		case info.TT != want.TT:
			t.Fatalf("pn %d: tt %v, want %v", info.PN, info.TT, want.TT)
		case r.track == 0 && info.FT != want.FT:
			t.Fatalf("pn %d: ft %d, want %d", info.PN, info.FT, want.FT)
		case info.SQ != r.pkt.SequenceNumber || r.pkt.SequenceNumber != wh.SequenceNumber:
			t.Fatalf("pn %d: sq %d, header %d, want %d", info.PN, info.SQ, r.pkt.SequenceNumber, wh.SequenceNumber)
		case r.pkt.Timestamp != wh.Timestamp || r.pkt.Marker != wh.Marker || r.pkt.PayloadType != wh.PayloadType:
			t.Fatalf("pn %d: RTP header differs from Packetize's", info.PN)
		case !bytes.Equal(info.MD, wh.Payload):
			t.Fatalf("pn %d: md differs from the packetized payload", info.PN)
		}
	}
}

// TestMetaInfoOff: without the header, or with DisableMetaInfo, SETUP has no
// echo and the packets are Packetize's plain RTP.
func TestMetaInfoOff(t *testing.T) {
	t.Parallel()
	clip := testClip(t)
	for name, tc := range map[string]struct {
		disable bool
		ask     bool
	}{"not asked": {false, false}, "disabled": {true, true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := startOrigin(t, Config{Media: map[string][]byte{"s.ts": SampleClip()}, DisableMetaInfo: tc.disable})
			extra := map[base.Method]base.Header{base.Play: {"Speed": {"8"}}}
			if tc.ask {
				extra[base.Setup] = base.Header{"x-RTP-Meta-Info": {"tt;ft;pn;md"}}
			}
			p := dial(t, o.Addr(), "s.ts", extra)
			for i := range 2 {
				if got := p.header(base.Setup, i, "X-Rtp-Meta-Info"); got != "" {
					t.Fatalf("SETUP %d echoed %q", i, got)
				}
			}
			if _, err := p.c.Play(nil); err != nil {
				t.Fatal(err)
			}
			p.waitEnd(30 * time.Second)
			bySeq := map[[2]int]Packet{}
			for _, cp := range clip.Packets {
				var h rtp.Packet
				if err := h.Unmarshal(cp.RTP); err != nil {
					t.Fatal(err)
				}
				bySeq[[2]int{int(cp.Track), int(h.SequenceNumber)}] = cp
			}
			got := p.packets()
			if len(got) != len(clip.Packets) {
				t.Fatalf("received %d packets, want %d", len(got), len(clip.Packets))
			}
			for _, r := range got {
				cp, ok := bySeq[[2]int{r.track, int(r.pkt.SequenceNumber)}]
				if !ok {
					t.Fatalf("track %d seq %d not in the clip", r.track, r.pkt.SequenceNumber)
				}
				var h rtp.Packet
				if err := h.Unmarshal(cp.RTP); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(h.Payload, r.pkt.Payload) || h.Timestamp != r.pkt.Timestamp {
					t.Fatalf("track %d seq %d differs from Packetize", r.track, r.pkt.SequenceNumber)
				}
			}
		})
	}
}
