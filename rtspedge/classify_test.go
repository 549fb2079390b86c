package rtspedge

import (
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/store"
)

// describedAs is a one-track H.264 description with the session-level and
// media-level a=range lines given ("" for none), as origins write them.
func describedAs(session, media string) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 4706271825376040176 1 IN IP4 127.0.0.1\r\ns=Session streamed with GStreamer\r\nt=0 0\r\na=control:*\r\n")
	if session != "" {
		b.WriteString("a=range:" + session + "\r\n")
	}
	b.WriteString("m=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\n" +
		"a=fmtp:96 packetization-mode=1;profile-level-id=64000d\r\na=control:stream=0\r\n")
	if media != "" {
		b.WriteString("a=range:" + media + "\r\n")
	}
	return b.String()
}

// TestClassify holds the descriptions and PLAY answers of the RTSP servers
// users run (DESIGN.md §7): on demand when a range has an end, live
// otherwise, the PLAY answer's end being the duration.
func TestClassify(t *testing.T) {
	cases := []struct {
		name                 string
		session, media, play string // a=range at session and media level; PLAY answer's Range
		live                 bool
		dur                  time.Duration
		reason               string
	}{
		{name: "gst-rtsp-server VOD as reported", session: "npt=now-20", play: "npt=0-20",
			dur: 20 * time.Second, reason: "PLAY Range npt=0-20 has an end"},
		{name: "gst-rtsp-server VOD before PLAY", session: "npt=now-20",
			dur: 20 * time.Second, reason: "SDP a=range:npt=now-20 has an end"},
		{name: "gst-rtsp-server 1.22 MP4 VOD (measured)", session: "npt=0-5", play: "npt=0-5",
			dur: 5 * time.Second, reason: "PLAY Range npt=0-5 has an end"},
		{name: "gst-rtsp-server live", session: "npt=now-", play: "npt=now-", live: true,
			reason: "SDP a=range:npt=now- has no end; PLAY Range npt=now- has no end"},
		{name: "gst-rtsp-server 1.22 MPEG-TS through tsdemux (measured: no duration)",
			session: "npt=0.78-", play: "npt=0.78-", live: true,
			reason: "SDP a=range:npt=0.78- has no end; PLAY Range npt=0.78- has no end"},
		{name: "live555 file", session: "npt=0-20.000", play: "npt=0.000-20.000",
			dur: 20 * time.Second, reason: "PLAY Range npt=0.000-20.000 has an end"},
		{name: "camera npt=0-", session: "npt=0-", play: "npt=0.000-", live: true,
			reason: "SDP a=range:npt=0- has no end; PLAY Range npt=0.000- has no end"},
		{name: "camera without ranges", live: true, reason: "no SDP a=range; no PLAY Range"},
		{name: "camera, range in the PLAY answer only", play: "npt=0.000-", live: true,
			reason: "no SDP a=range; PLAY Range npt=0.000- has no end"},
		{name: "Darwin Streaming Server", session: "npt=0-596.48000", play: "npt=0.00000-596.48000",
			dur: 596480 * time.Millisecond, reason: "PLAY Range npt=0.00000-596.48000 has an end"},
		{name: "built-in origin VOD", session: "npt=0-20.020", play: "npt=0.000-20.020",
			dur: 20020 * time.Millisecond, reason: "PLAY Range npt=0.000-20.020 has an end"},
		{name: "built-in origin live", session: "npt=now-", play: "npt=13.480-", live: true,
			reason: "SDP a=range:npt=now- has no end; PLAY Range npt=13.480- has no end"},
		{name: "media-level range only", media: "npt=0-12.5",
			dur: 12500 * time.Millisecond, reason: "SDP a=range:npt=0-12.5 has an end"},
		{name: "open session range, finite media range", session: "npt=0-", media: "npt=0-12.5",
			dur: 12500 * time.Millisecond, reason: "SDP a=range:npt=0-12.5 has an end"},
		{name: "the PLAY answer's end is the duration", session: "npt=0-20.000", play: "npt=10.000-19.960",
			dur: 19960 * time.Millisecond, reason: "PLAY Range npt=10.000-19.960 has an end"},
		{name: "open PLAY answer, finite description", session: "npt=now-20", play: "npt=now-",
			dur: 20 * time.Second, reason: "SDP a=range:npt=now-20 has an end"},
		{name: "hh:mm:ss", session: "npt=00:00:00-00:01:02.5",
			dur: 62500 * time.Millisecond, reason: "SDP a=range:npt=00:00:00-00:01:02.5 has an end"},
		{name: "PLAY Range with a time parameter", play: "npt=0-20;time=20261201T150000Z",
			dur: 20 * time.Second, reason: "PLAY Range npt=0-20;time=20261201T150000Z has an end"},
		{name: "clock range is not read", session: "clock=19961108T142300Z-19961108T143520Z", live: true,
			reason: "SDP a=range:clock=19961108T142300Z-19961108T143520Z has no end; no PLAY Range"},
		{name: "zero end", session: "npt=0-0", live: true, reason: "SDP a=range:npt=0-0 has no end; no PLAY Range"},
		{name: "unreadable end", session: "npt=0-1e9", live: true, reason: "SDP a=range:npt=0-1e9 has no end; no PLAY Range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ssd, _, err := parseSDP([]byte(describedAs(c.session, c.media)))
			if err != nil {
				t.Fatal(err)
			}
			got := classify(ssd, c.play)
			if got.live != c.live || got.duration != c.dur || got.reason != c.reason {
				t.Fatalf("classify(%q, %q, PLAY %q) = live %v, %v, %q; want live %v, %v, %q",
					c.session, c.media, c.play, got.live, got.duration, got.reason, c.live, c.dur, c.reason)
			}
		})
	}
}

func TestParseNPTTime(t *testing.T) {
	good := map[string]time.Duration{
		"20": 20 * time.Second, "20.5": 20500 * time.Millisecond, "0:00:20.5": 20500 * time.Millisecond,
		"1:02:03": time.Hour + 2*time.Minute + 3*time.Second, "596.48000": 596480 * time.Millisecond,
	}
	for s, want := range good {
		if got, ok := parseNPTTime(s); !ok || got != want {
			t.Errorf("parseNPTTime(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "now", "NOW", "-1", "1e3", "Inf", "NaN", "0x10", "1:2", "1:60:00", "1.5:00:00", ":", "1::2", "99999999999"} {
		if got, ok := parseNPTTime(s); ok {
			t.Errorf("parseNPTTime(%q) = %v, want no time", s, got)
		}
	}
}

// TestReclassifyAtPlay: a stream DESCRIBE left live (no range) whose PLAY
// answer has an end becomes on demand in the session's manifest and in the
// recording, which stops being a live window, before its first packet.
func TestReclassifyAtPlay(t *testing.T) {
	ssd, _, err := parseSDP([]byte(describedAs("", "")))
	if err != nil {
		t.Fatal(err)
	}
	c := classify(ssd, "")
	var told []bool
	o := &OriginSession{ssd: ssd, log: testkit.Logger(),
		req: OriginRequest{OnClassify: func(live bool) { told = append(told, live) }},
		m:   store.Manifest{Key: "k", SDP: []byte(describedAs("", "")), Live: c.live, ClassReason: c.reason}}
	st := newStore(t)
	w, err := st.Create(o.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	if m := w.Manifest(); m.State != store.StateLive {
		t.Fatalf("created %s, want live", m.State)
	}
	r := &playRun{o: o, w: w}
	r.reclassify("npt=0.000-20.000")
	want := "PLAY Range npt=0.000-20.000 has an end"
	if m := o.Manifest(); m.Live || m.Duration != 20*time.Second || m.ClassReason != want {
		t.Fatalf("session manifest: live %v, %v, %q", m.Live, m.Duration, m.ClassReason)
	}
	m, err := st.Manifest("k")
	if err != nil {
		t.Fatal(err)
	}
	if m.Live || m.State != store.StateFilling || m.Duration != 20*time.Second || m.ClassReason != want {
		t.Fatalf("stored: live %v, state %s, %v, %q", m.Live, m.State, m.Duration, m.ClassReason)
	}
	if len(told) != 1 || told[0] {
		t.Fatalf("OnClassify calls %v, want [false]", told)
	}
	_ = w.Finish(store.StateComplete)
}

// FuzzPlayRange: whatever Range a PLAY answer carries, reading its end never
// panics, and an end read is positive and bounded.
func FuzzPlayRange(f *testing.F) {
	for _, s := range []string{"npt=0-20", "npt=now-", "npt=0.000-20.000", "npt=00:00:01.5-0:01:00;time=x", "clock=1-2", "npt=-", "npt=1e9-inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := nptEnd(v)
		if ok && (d <= 0 || d > maxNPT) {
			t.Fatalf("nptEnd(%q) = %v", v, d)
		}
		ssd, _, err := parseSDP([]byte(describedAs("", "")))
		if err != nil {
			t.Fatal(err)
		}
		if c := classify(ssd, v); c.live == ok || c.reason == "" {
			t.Fatalf("classify with PLAY Range %q: live %v, reason %q (end read: %v)", v, c.live, c.reason, ok)
		}
	})
}
