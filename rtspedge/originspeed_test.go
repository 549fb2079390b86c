package rtspedge

import (
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestPlaySpeedWithinRateLimit: the built-in origin declares its clip's
// bitrate (b=AS); a session asks for Speed only for on-demand streams, and
// with a rate limit for no more than the limit over that bitrate.
func TestPlaySpeedWithinRateLimit(t *testing.T) {
	t.Parallel()
	o, _ := startOrigin(t, origin.Config{Live: map[string][]byte{"live": origin.SampleClip()}})
	open := func(path string, req OriginRequest) *OriginSession {
		t.Helper()
		req.URL = originURL(o, path)
		s, err := OpenOrigin(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	vod := open(samplePath, OriginRequest{})
	bitrate := sdpBitrate(vod.ssd)
	clip, err := origin.Packetize(origin.SampleClip())
	if err != nil {
		t.Fatal(err)
	}
	var rtpBytes int
	for _, p := range clip.Packets {
		rtpBytes += len(p.RTP)
	}
	actual := float64(rtpBytes) * 8 / clip.Duration.Seconds()
	if bitrate < actual || bitrate > actual*1.2 {
		t.Fatalf("SDP declares %.0f bit/s; the clip's RTP is %.0f bit/s", bitrate, actual)
	}
	for _, tc := range []struct {
		name  string
		path  string
		req   OriginRequest
		bytes uint64
		tt    time.Duration
		want  float64
	}{
		{"no speed asked", samplePath, OriginRequest{}, 0, 0, 0},
		{"speed 8", samplePath, OriginRequest{Speed: 8}, 0, 0, 8},
		{"live: none", "live", OriginRequest{Speed: 8}, 0, 0, 0},
		{"capped at 2x the SDP bitrate", samplePath, OriginRequest{Speed: 8, RateLimit: int64(2 * bitrate)}, 0, 0, 2},
		{"cap above 8x: 8", samplePath, OriginRequest{Speed: 8, RateLimit: int64(20 * bitrate)}, 0, 0, 8},
		{"cap below the bitrate: none", samplePath, OriginRequest{Speed: 8, RateLimit: int64(bitrate / 2)}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(tc.path, tc.req)
			if got := s.playSpeed(tc.bytes, tc.tt); got < tc.want*0.999 || got > tc.want*1.001 {
				t.Fatalf("playSpeed = %v, want %v", got, tc.want)
			}
		})
	}
	// Without a declared bitrate a resumed fill estimates it from what it
	// holds; a new one asks for none.
	vod.ssd.Bandwidth = nil
	vod.req.Speed, vod.req.RateLimit = 8, 3_000_000
	if got := vod.playSpeed(0, 0); got != 0 {
		t.Fatalf("capped, no bitrate known: playSpeed = %v, want 0", got)
	}
	if got := vod.playSpeed(1_000_000/8*10, 10*time.Second); got < 2.999 || got > 3.001 {
		t.Fatalf("capped at 3 Mbit/s, 1 Mbit/s held: playSpeed = %v, want 3", got)
	}
}

// TestSpeedCheckVerdict: a session granted Speed 8 is checked against the
// origin's transmit times when it sends them, else against wall-clock
// time; an RTP clock slowed by the speed is refused, one in media time is
// accepted as soon as it shows.
func TestSpeedCheckVerdict(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	const clock = 90000
	// feed holds n video packets 40 ms of media apart (RTP advancing
	// rtpPerFrame of that), arriving wallPerFrame apart.
	feed := func(c *speedCheck, n int, meta bool, rtpPerFrame float64, wallPerFrame time.Duration) time.Time {
		var at time.Time
		for i := range n {
			p := store.Packet{Track: 0, TT: time.Duration(i) * 40 * time.Millisecond, RTP: []byte{0x80}}
			if meta {
				p.Flags |= store.FlagMetaInfo
			}
			at = t0.Add(time.Duration(i) * wallPerFrame)
			c.hold(p, 1000+uint32(float64(i)*rtpPerFrame*0.04*clock), clock, at)
		}
		return at
	}
	for _, tc := range []struct {
		name              string
		n                 int
		meta, end         bool
		rtp               float64 // RTP advance per media second
		wall              time.Duration
		decided, honoured bool
	}{
		{"meta-info, media time", 6, true, false, 1, 5 * time.Millisecond, true, true},
		{"meta-info, clock slowed 8x", 6, true, false, 0.125, 5 * time.Millisecond, true, false},
		{"meta-info, agreeing at 80 ms: early", 3, true, false, 1, 5 * time.Millisecond, true, true},
		{"meta-info, slowed at 80 ms: wait", 3, true, false, 0.125, 5 * time.Millisecond, false, false},
		{"meta-info, too early", 2, true, false, 1, 5 * time.Millisecond, false, false},
		{"meta-info, too early but the stream ended", 2, true, true, 1, 5 * time.Millisecond, true, true},
		{"derived, 8x in media time: decided at 2 s of media", 51, false, false, 1, 5 * time.Millisecond, true, true},
		{"derived, 8x, 1 s of media: wait", 26, false, false, 1, 5 * time.Millisecond, false, false},
		{"derived, clock slowed: refused after the window", 20, false, false, 0.125, 40 * time.Millisecond, true, false},
		{"derived, clock slowed, within the window: wait", 10, false, false, 0.125, 40 * time.Millisecond, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newSpeedCheck(8)
			last := feed(c, tc.n, tc.meta, tc.rtp, tc.wall)
			decided, honoured := c.verdict(last, tc.end)
			if decided != tc.decided || honoured != tc.honoured {
				t.Fatalf("verdict (decided %v, honoured %v), want (%v, %v); ratio %.2f", decided, honoured, tc.decided, tc.honoured, c.ratio(last))
			}
			if len(c.held) != tc.n {
				t.Fatalf("held %d packets of %d", len(c.held), tc.n)
			}
		})
	}
}
