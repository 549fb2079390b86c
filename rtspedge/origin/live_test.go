package origin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
)

// shortClip makes a 2 s clip like the sample (so a live loop comes round
// fast); opts replace the video profile options and may drop the audio.
func shortClip(t *testing.T, opts ...string) []byte {
	t.Helper()
	if len(opts) == 0 {
		opts = []string{"-profile:v", "baseline"}
	}
	f := filepath.Join(t.TempDir(), "short.ts")
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "2", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
		"-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-c:a", "aac", "-ac", "1", "-ar", "48000"}
	args = append(args, opts...)
	args = append(args, "-f", "mpegts", f)
	out, err := exec.CommandContext(t.Context(), "ffmpeg", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type livePacket struct {
	track  int
	pn     uint64
	tt     time.Duration
	ft     uint16
	seq    uint16
	ts     uint32
	marker bool
}

func decodeLive(t *testing.T, p *player, f metainfo.Fields) []livePacket {
	t.Helper()
	var out []livePacket
	for _, r := range p.packets() {
		i, err := metainfo.Decode(r.pkt.Payload, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, livePacket{r.track, i.PN, i.TT, i.FT, r.pkt.SequenceNumber, r.pkt.Timestamp, r.pkt.Marker})
	}
	return out
}

// TestLiveLoop loops a 2 s clip: a player joins at the latest key frame of the
// shared clock and sees pn, tt, sequence numbers and timestamps continue
// across two loop points; a second player joining later gets the very same
// packets for the same pn.
func TestLiveLoop(t *testing.T) {
	t.Parallel()
	ts := shortClip(t)
	clip, err := Packetize(ts)
	if err != nil {
		t.Fatal(err)
	}
	total := uint64(len(clip.Packets))
	o := startOrigin(t, Config{Live: map[string][]byte{"live": ts}})
	f, _ := metainfo.ParseHeader("tt;ft;pn;sq;md")
	meta := map[base.Method]base.Header{base.Setup: {"x-RTP-Meta-Info": {f.String()}}}

	p1 := dial(t, o.Addr(), "live", meta)
	p1.mu.Lock()
	sdp := string(p1.responses[base.Describe][0].Body)
	p1.mu.Unlock()
	if !strings.Contains(sdp, "a=range:npt=now-") {
		t.Fatalf("live SDP has no open range:\n%s", sdp)
	}
	if _, err := p1.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	if rng := p1.header(base.Play, 0, "Range"); !strings.HasPrefix(rng, "npt=") || !strings.HasSuffix(rng, "-") {
		t.Fatalf("live PLAY Range %q, want npt=<start>-", rng)
	}
	p1.waitFor("a packet", 5*time.Second, func() bool { return p1.count() > 0 })
	first := decodeLive(t, p1, f)[0]
	p1.waitFor("two loop points", 15*time.Second, func() bool {
		got := decodeLive(t, p1, f)
		return len(got) > 0 && got[len(got)-1].pn >= (first.pn/total+2)*total+total/4
	})
	p2 := dial(t, o.Addr(), "live", meta)
	if _, err := p2.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	p2.waitFor("packets", 5*time.Second, func() bool { return p2.count() > 200 })

	got := decodeLive(t, p1, f)
	if got[0].track != 0 || got[0].ft != metainfo.FrameKey || !clip.Packets[got[0].pn%total].KeyStart {
		t.Fatalf("live play starts with %+v, want a key start", got[0])
	}
	var last [2]*livePacket
	for i := range got {
		c := &got[i]
		if i > 0 {
			prev := got[i-1]
			if c.pn != prev.pn+1 {
				t.Fatalf("pn %d after %d", c.pn, prev.pn)
			}
			if c.tt < prev.tt || c.tt > prev.tt+100*time.Millisecond {
				t.Fatalf("pn %d: tt %v after %v", c.pn, c.tt, prev.tt)
			}
		}
		if c.tt != time.Duration(c.pn/total)*clip.Duration+clip.Packets[c.pn%total].TT {
			t.Fatalf("pn %d: tt %v does not follow the loop", c.pn, c.tt)
		}
		if l := last[c.track]; l != nil {
			if c.seq != l.seq+1 {
				t.Fatalf("track %d pn %d: seq %d after %d", c.track, c.pn, c.seq, l.seq)
			}
			d := int64(int32(c.ts - l.ts))
			if d < 0 || d > int64(clip.clockRate[c.track])/10 {
				t.Fatalf("track %d pn %d: timestamp step %d across %v", c.track, c.pn, d, c.tt-l.tt)
			}
		}
		last[c.track] = c
	}
	if loops := got[len(got)-1].pn/total - got[0].pn/total; loops < 2 {
		t.Fatalf("crossed %d loop points, want 2", loops)
	}

	// RTP-Info maps the live start (the first packet's tt) on both tracks.
	var tts []time.Duration
	for track := range 2 {
		for _, c := range got {
			if c.track == track {
				tts = append(tts, c.tt)
				break
			}
		}
	}
	checkRTPInfo(t, p1, 0, clip, got[0].tt, firstPerTrack(t, p1.packets(), 2), tts)

	// The second player is on the same clock: same pn, same packet.
	byPN := map[uint64]livePacket{}
	for _, c := range got {
		byPN[c.pn] = c
	}
	common := 0
	for _, c := range decodeLive(t, p2, f) {
		if o, ok := byPN[c.pn]; ok {
			common++
			if o != c {
				t.Fatalf("pn %d differs between players: %+v vs %+v", c.pn, o, c)
			}
		}
	}
	if common < 100 {
		t.Fatalf("players share only %d packets", common)
	}
	if d, pl := o.Sessions("live"); d != 2 || pl != 2 {
		t.Fatalf("Sessions(live) = %d, %d", d, pl)
	}
}
