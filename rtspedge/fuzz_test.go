package rtspedge

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/store"
)

// FuzzSDP: an origin's description (stored, then rewritten for players)
// never panics the parser, the track list, the range reader or the rewrite;
// a rewritten description parses again with one trackID control per media.
func FuzzSDP(f *testing.F) {
	f.Add([]byte(synthSDP))
	f.Add([]byte("v=0\r\ns=x\r\nt=0 0\r\na=range:npt=0-12.5\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/48000/1\r\n"))
	f.Add([]byte("v=0\r\ns=x\r\nt=0 0\r\na=range:npt=now-\r\nm=video 0 RTP/AVP 26\r\na=control:rtsp://h/x/t1\r\n"))
	f.Add([]byte("v=0\r\ns=x\r\nt=0 0\r\na=range:npt=now-20\r\nm=video 0 RTP/AVP 26\r\na=range:npt=0:00:01.5-0:01:00\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ssd, desc, err := parseSDP(b)
		if err != nil {
			return
		}
		_ = tracksOf(desc)
		c := classify(ssd, "")
		out, pdesc, err := playerDescription(store.Manifest{SDP: b, Duration: c.duration, Live: c.live})
		if err != nil {
			return
		}
		if len(pdesc.Medias) != len(desc.Medias) {
			t.Fatalf("rewrite has %d media, origin %d", len(pdesc.Medias), len(desc.Medias))
		}
		if !strings.Contains(string(out), "a=control:trackID=0") {
			t.Fatalf("rewrite lacks the trackID control:\n%s", out)
		}
	})
}

// FuzzOriginPacket: whatever an origin sends as a (meta-info or plain) RTP
// payload, conversion to a stored packet never panics, and a converted
// packet is valid RTP.
func FuzzOriginPacket(f *testing.F) {
	fields, err := metainfo.ParseHeader("tt=0;ft=1;pn;md")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(metainfo.Encode(nil, fields, metainfo.Info{TT: time.Second, FT: 1, PN: 7, MD: []byte{0x65, 0x88, 0x84}}), uint32(90000), true, true)
	f.Add([]byte{0x7c, 0x85, 0x88, 0x84, 0x00}, uint32(3600), false, false)
	f.Add([]byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, uint32(0), true, false)
	f.Fuzz(func(t *testing.T, payload []byte, ts uint32, marker, meta bool) {
		medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}}}
		tr := newOriginTrack(0, medi, store.Track{ClockRate: 90000})
		if meta {
			tr.fields = fields
		}
		r := &playRun{o: &OriginSession{log: testkit.Logger()}, started: time.Now(), speed: 1}
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, Timestamp: ts, Marker: marker}, Payload: payload}
		p, ok := tr.convert(pkt, time.Now(), r)
		if !ok {
			return
		}
		var back rtp.Packet
		if err := back.Unmarshal(p.RTP); err != nil {
			t.Fatalf("converted packet is not RTP: %v", err)
		}
		if p.TT < 0 {
			t.Fatalf("negative tt %v", p.TT)
		}
	})
}

// FuzzPlayHeaders: a player's Range and an origin's RTP-Info never panic
// their readers.
func FuzzPlayHeaders(f *testing.F) {
	f.Add("npt=10.5-", "url=rtsp://h/x/trackID=0;seq=1;rtptime=2,url=rtsp://h/x/trackID=1;seq=3")
	f.Add("npt=now-", "url=trackID=0")
	f.Add("clock=19961108T143720.25Z-", "")
	f.Fuzz(func(t *testing.T, rng, info string) {
		if start, has, ok := parseNPT(base.HeaderValue{rng}); ok && has && start < 0 {
			t.Fatalf("negative start %v from %q", start, rng)
		}
		var ri headers.RTPInfo
		if err := ri.Unmarshal(base.HeaderValue{info}); err != nil {
			return
		}
		for i := 0; i < 3; i++ {
			_ = matchRTPInfo(ri, i, 3, "/x/trackID=0")
		}
	})
}
