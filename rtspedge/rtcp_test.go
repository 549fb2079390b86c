package rtspedge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// rtcpCompound is one RTCP packet as it arrived (an interleaved frame or a
// datagram), decoded.
type rtcpCompound struct {
	at    time.Time
	phase int
	pkts  []rtcp.Packet
	err   error
}

// rxRTP is one RTP packet a rtcpPlayer received.
type rxRTP struct {
	ssrc  uint32
	ts    uint32
	at    time.Time
	phase int
	sum   [32]byte // of the payload
}

// rtcpPlayer is a gortsplib client that keeps every RTCP packet as the
// transport delivered it (over TCP the interleaved frames themselves:
// gortsplib splits compounds before its callbacks), and every RTP packet's
// SSRC, timestamp and arrival.
type rtcpPlayer struct {
	c     *gortsplib.Client
	clock map[uint32]uint32 // SSRC → clock rate, learnt from the packets

	mu       sync.Mutex
	phase    int
	compound []rtcpCompound
	open     map[*description.Media]int // UDP: index in compound of each media's compound being read
	rtp      []rxRTP
}

func newRTCPPlayer(t testing.TB, url string, tr gortsplib.Transport) *rtcpPlayer {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	p := &rtcpPlayer{clock: map[uint32]uint32{}}
	p.c = &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr, ReadTimeout: 30 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &tcpSniffer{Conn: c, onFrame: func(ch byte, b []byte) {
				if ch%2 == 1 {
					p.gotRTCP(b)
				}
			}}, nil
		},
		OnPacketsLost: func(uint64) {},
		OnDecodeError: func(error) {},
	}
	if err := p.c.Start2(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.c.Close)
	desc, _, err := p.c.Describe(u)
	if err != nil {
		t.Fatalf("DESCRIBE: %v", err)
	}
	if err := p.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("SETUP: %v", err)
	}
	if tr == gortsplib.TransportUDP {
		// gortsplib needs its own *net.UDPConn, so datagrams cannot be
		// seen whole: a compound is taken to start at each SR (gortsplib
		// hands a datagram's packets over in order, on the goroutine of
		// its media's socket). Each media has its own RTCP socket, so two
		// tracks' compounds sent at once (the BYEs) arrive interleaved:
		// a packet joins the compound open for its media.
		p.open = map[*description.Media]int{}
		p.c.OnPacketRTCPAny(func(medi *description.Media, pkt rtcp.Packet) {
			p.mu.Lock()
			defer p.mu.Unlock()
			i, ok := p.open[medi]
			if _, sr := pkt.(*rtcp.SenderReport); sr || !ok {
				p.compound = append(p.compound, rtcpCompound{at: time.Now(), phase: p.phase})
				i = len(p.compound) - 1
				p.open[medi] = i
			}
			p.compound[i].pkts = append(p.compound[i].pkts, pkt)
		})
	}
	p.c.OnPacketRTPAny(func(medi *description.Media, f format.Format, pkt *rtp.Packet) {
		now := time.Now()
		p.mu.Lock()
		p.clock[pkt.SSRC] = uint32(f.ClockRate())
		p.rtp = append(p.rtp, rxRTP{ssrc: pkt.SSRC, ts: pkt.Timestamp, at: now, phase: p.phase, sum: sha256.Sum256(pkt.Payload)})
		p.mu.Unlock()
	})
	return p
}

func (p *rtcpPlayer) gotRTCP(b []byte) {
	pkts, err := rtcp.Unmarshal(bytes.Clone(b))
	p.mu.Lock()
	p.compound = append(p.compound, rtcpCompound{at: time.Now(), phase: p.phase, pkts: pkts, err: err})
	p.mu.Unlock()
}

func (p *rtcpPlayer) setPhase(n int) {
	p.mu.Lock()
	p.phase = n
	p.mu.Unlock()
}

func (p *rtcpPlayer) snapshot() ([]rtcpCompound, []rxRTP, map[uint32]uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	clock := make(map[uint32]uint32, len(p.clock))
	for k, v := range p.clock {
		clock[k] = v
	}
	return slices.Clone(p.compound), slices.Clone(p.rtp), clock
}

// byes counts the compounds that carry a BYE.
func (p *rtcpPlayer) byes() int {
	cs, _, _ := p.snapshot()
	n := 0
	for _, c := range cs {
		for _, pk := range c.pkts {
			if _, ok := pk.(*rtcp.Goodbye); ok {
				n++
			}
		}
	}
	return n
}

// tcpSniffer passes a client's RTSP connection through and hands every
// interleaved frame ($, channel, length, payload) to onFrame; it is read by
// one goroutine.
type tcpSniffer struct {
	net.Conn
	buf     []byte
	onFrame func(ch byte, payload []byte)
}

func (c *tcpSniffer) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.buf = append(c.buf, b[:n]...)
	for len(c.buf) > 0 {
		if c.buf[0] == '$' {
			if len(c.buf) < 4 {
				break
			}
			l := int(binary.BigEndian.Uint16(c.buf[2:4]))
			if len(c.buf) < 4+l {
				break
			}
			c.onFrame(c.buf[1], c.buf[4:4+l])
			c.buf = c.buf[4+l:]
			continue
		}
		end := bytes.Index(c.buf, []byte("\r\n\r\n"))
		if end < 0 {
			break
		}
		body := 0
		for _, line := range strings.Split(string(c.buf[:end]), "\r\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
				body, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if len(c.buf) < end+4+body {
			break
		}
		c.buf = c.buf[end+4+body:]
	}
	return n, err
}

// srPoint is a sender report as received.
type srPoint struct {
	at    time.Time
	phase int
	ntp   time.Time
	rtp   uint32
	bye   bool // the report of the compound that ended the stream
}

// checkCompounds: every RTCP packet is a compound that starts with SR and
// carries SDES CNAME (one CNAME for the whole session), a BYE comes last in
// the last compound of each track; it returns the reports by SSRC.
func checkCompounds(t *testing.T, cs []rtcpCompound) map[uint32][]srPoint {
	t.Helper()
	out := map[uint32][]srPoint{}
	cname := ""
	for i, c := range cs {
		if c.err != nil {
			t.Fatalf("RTCP packet %d does not decode: %v", i, c.err)
		}
		sr, ok := c.pkts[0].(*rtcp.SenderReport)
		if !ok {
			t.Fatalf("RTCP packet %d starts with %T, want a sender report", i, c.pkts[0])
		}
		if err := rtcp.CompoundPacket(c.pkts).Validate(); err != nil {
			t.Fatalf("RTCP packet %d (%d parts) is not a valid compound: %v", i, len(c.pkts), err)
		}
		for _, pk := range c.pkts {
			if sd, ok := pk.(*rtcp.SourceDescription); ok {
				for _, ch := range sd.Chunks {
					for _, it := range ch.Items {
						if it.Type == rtcp.SDESCNAME && cname == "" {
							cname = it.Text
						} else if it.Type == rtcp.SDESCNAME && it.Text != cname {
							t.Fatalf("CNAME %q, earlier %q: one session, one CNAME", it.Text, cname)
						}
					}
				}
			}
		}
		_, bye := c.pkts[len(c.pkts)-1].(*rtcp.Goodbye)
		if prev := out[sr.SSRC]; len(prev) > 0 && prev[len(prev)-1].bye {
			t.Fatalf("RTCP after the BYE of SSRC %08x", sr.SSRC)
		}
		out[sr.SSRC] = append(out[sr.SSRC], srPoint{at: c.at, phase: c.phase, ntp: timeOfNTP(sr.NTPTime), rtp: sr.RTPTime, bye: bye})
	}
	return out
}

// ntpOf maps an RTP timestamp through a sender report.
func ntpOf(sr srPoint, ts, clock uint32) time.Time {
	return sr.ntp.Add(store.TicksToDuration(int64(int32(ts-sr.rtp)), clock))
}

// TestSenderReportsVOD: over TCP and UDP, a player of a complete recording
// gets per track a sender report about every 5 s, each RTCP packet a
// compound SR + SDES, and at the end SR + SDES + BYE; every report of a
// track lies on one RTP↔NTP line across a PAUSE and a seek; the line
// matches the packets (audio and video agree: lip sync) in each stretch.
func TestSenderReportsVOD(t *testing.T) {
	t.Parallel()
	o, _ := startOrigin(t, origin.Config{})
	st := newStore(t)
	fill(t, st, "v", originURL(o, samplePath), OriginRequest{AskMetaInfo: true, Speed: 8})
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st), Transports: []string{"tcp", "udp"}, UDPRTPAddress: "127.0.0.1:0"})

	var wg sync.WaitGroup
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		name := "tcp"
		if tr == gortsplib.TransportUDP {
			name = "udp"
		}
		p := newRTCPPlayer(t, serverURL(s, "v"), tr)
		wg.Go(func() { playWithPauseAndSeek(t, name, p) })
	}
	wg.Wait()
	if st := s.Stats(); st.ReportsSent == 0 || st.RTCPReceived == 0 {
		t.Errorf("server stats: %d reports sent, %d RTCP packets received from players", st.ReportsSent, st.RTCPReceived)
	} else {
		t.Logf("server: %d RTCP compounds sent, %d RTCP packets received from players", st.ReportsSent, st.RTCPReceived)
	}
}

// playWithPauseAndSeek plays 7 s, pauses 1 s, plays 3 s, seeks to 15 s and
// plays to the end of the 20 s sample, then checks the RTCP it got.
func playWithPauseAndSeek(t *testing.T, name string, p *rtcpPlayer) {
	wait := func(d time.Duration) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-t.Context().Done():
		}
	}
	if _, err := p.c.Play(nil); err != nil {
		t.Errorf("%s: PLAY: %v", name, err)
		return
	}
	wait(7 * time.Second)
	if _, err := p.c.Pause(); err != nil {
		t.Errorf("%s: PAUSE: %v", name, err)
		return
	}
	p.setPhase(1)
	wait(time.Second)
	if _, err := p.c.Play(nil); err != nil {
		t.Errorf("%s: PLAY (resume): %v", name, err)
		return
	}
	wait(3 * time.Second)
	if _, err := p.c.Pause(); err != nil {
		t.Errorf("%s: PAUSE: %v", name, err)
		return
	}
	p.setPhase(2)
	if _, err := p.c.Play(&headers.Range{Value: &headers.RangeNPT{Start: 15 * time.Second}}); err != nil {
		t.Errorf("%s: PLAY (seek): %v", name, err)
		return
	}
	deadline := time.Now().Add(15 * time.Second)
	for p.byes() < 2 && time.Now().Before(deadline) {
		wait(100 * time.Millisecond)
	}
	cs, pkts, clock := p.snapshot()
	t.Run(name, func(t *testing.T) { checkVODReports(t, cs, pkts, clock) })
}

func checkVODReports(t *testing.T, cs []rtcpCompound, pkts []rxRTP, clock map[uint32]uint32) {
	reports := checkCompounds(t, cs)
	if len(reports) != 2 {
		t.Fatalf("reports for %d SSRCs, want 2 (audio and video)", len(reports))
	}
	offsets := map[int][]time.Duration{} // per phase: median of arrival − NTP(ts) per track
	for ssrc, srs := range reports {
		c := clock[ssrc]
		if c == 0 {
			t.Fatalf("SSRC %08x reported but no RTP packet of it", ssrc)
		}
		if !srs[len(srs)-1].bye {
			t.Fatalf("SSRC %08x: the last RTCP packet is not SR+BYE", ssrc)
		}
		var gaps []string
		for i := 1; i < len(srs); i++ {
			if srs[i].phase != srs[i-1].phase || srs[i].bye {
				continue // PAUSE stops reports; the BYE's comes at the end
			}
			gap := srs[i].at.Sub(srs[i-1].at)
			gaps = append(gaps, gap.Round(time.Millisecond).String())
			if gap < 2400*time.Millisecond || gap > 8*time.Second {
				t.Errorf("SSRC %08x: %v between two sender reports, want 2.5–7.5 s (RFC 3550: 5 s randomised)", ssrc, gap)
			}
		}
		t.Logf("SSRC %08x (clock %d): %d reports, intervals %v", ssrc, c, len(srs), gaps)
		if srs[0].at.Sub(firstRTP(pkts, ssrc)) > 500*time.Millisecond {
			t.Errorf("SSRC %08x: first sender report %v after the first packet", ssrc, srs[0].at.Sub(firstRTP(pkts, ssrc)))
		}
		// One line for the whole session, across PAUSE and the seek.
		for i, sr := range srs[1:] {
			if d := sr.ntp.Sub(ntpOf(srs[0], sr.rtp, c)); d < -2*time.Millisecond || d > 2*time.Millisecond {
				t.Errorf("SSRC %08x: report %d is %v off the line of the first", ssrc, i+1, d)
			}
		}
		for phase := 0; phase <= 2; phase++ {
			var offs []time.Duration
			for _, pk := range pkts {
				if pk.ssrc == ssrc && pk.phase == phase {
					offs = append(offs, pk.at.Sub(ntpOf(srs[0], pk.ts, c)))
				}
			}
			if len(offs) == 0 {
				t.Fatalf("SSRC %08x: no packets in phase %d", ssrc, phase)
			}
			sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
			offsets[phase] = append(offsets[phase], offs[len(offs)/2])
		}
	}
	for phase, o := range offsets {
		t.Logf("phase %d: arrival − NTP(timestamp), median per track: %v", phase, o)
		if d := o[0] - o[1]; d < -100*time.Millisecond || d > 100*time.Millisecond {
			t.Errorf("phase %d: the tracks' mappings differ by %v: players cannot sync them", phase, d)
		}
		if phase == 0 && (o[0] < -150*time.Millisecond || o[0] > 150*time.Millisecond) {
			t.Errorf("first play: packets arrive %v from their NTP time, want the wall clock", o[0])
		}
	}
}

func firstRTP(pkts []rxRTP, ssrc uint32) time.Time {
	for _, p := range pkts {
		if p.ssrc == ssrc {
			return p.at
		}
	}
	return time.Time{}
}

// senderReports are the sender reports p got, by the clock rate of their
// track (a track's identity across sessions: SSRCs differ).
func (p *rtcpPlayer) senderReports() map[uint32][]srPoint {
	cs, _, clock := p.snapshot()
	out := map[uint32][]srPoint{}
	for _, c := range cs {
		for _, pk := range c.pkts {
			if sr, ok := pk.(*rtcp.SenderReport); ok && clock[sr.SSRC] != 0 {
				out[clock[sr.SSRC]] = append(out[clock[sr.SSRC]], srPoint{at: c.at, ntp: timeOfNTP(sr.NTPTime), rtp: sr.RTPTime})
			}
		}
	}
	return out
}

// TestSenderReportsLive: the sender reports of a live stream carry the
// origin's NTP time: a player of the edge and a player of the origin map
// the same RTP timestamp (the edge keeps the origin's timestamps on a
// first PLAY) to the same wall-clock instant, over TCP and UDP.
func TestSenderReportsLive(t *testing.T) {
	t.Parallel()
	o, _ := startOrigin(t, origin.Config{Live: map[string][]byte{"live": origin.SampleClip()}})
	st := newStore(t)
	recs := newTestRecordings(t, st)
	recs.origins["live"] = originURL(o, "live")
	s := startServer(t, ServerConfig{Recordings: recs, Transports: []string{"tcp", "udp"}, UDPRTPAddress: "127.0.0.1:0"})

	direct := newRTCPPlayer(t, originURL(o, "live"), gortsplib.TransportTCP)
	if _, err := direct.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	first := newRTCPPlayer(t, serverURL(s, "live"), gortsplib.TransportTCP)
	if _, err := first.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	// The origin (gortsplib's ServerStream) reports every 10 s.
	testkit.Eventually(t, 20*time.Second, "the origin's clock of every track in the recording", func() bool {
		m, err := st.Manifest("live")
		if err != nil {
			return false
		}
		for _, tr := range m.Tracks {
			if tr.Clock.IsZero() {
				return false
			}
		}
		return true
	})
	players := map[string]*rtcpPlayer{
		"tcp": newRTCPPlayer(t, serverURL(s, "live"), gortsplib.TransportTCP),
		"udp": newRTCPPlayer(t, serverURL(s, "live"), gortsplib.TransportUDP),
	}
	for _, p := range players {
		if _, err := p.c.Play(nil); err != nil {
			t.Fatal(err)
		}
	}
	// The first report may come before the origin's reached the recording
	// (then it follows the session's clock); the second 2.5–7.5 s later.
	testkit.Eventually(t, 20*time.Second, "two sender reports of both tracks at every player", func() bool {
		for _, p := range []*rtcpPlayer{direct, players["tcp"], players["udp"]} {
			r := p.senderReports()
			if len(r) < 2 || len(r[90000]) < 2 || len(r[48000]) < 2 {
				return false
			}
		}
		return true
	})
	origin := direct.senderReports()
	_, want, _ := direct.snapshot()
	for name, p := range players {
		reports := p.senderReports()
		_, got, clock := p.snapshot()
		worst, n := matchInstants(got, want, clock, func(g, w rxRTP, c uint32) time.Duration {
			last := reports[c][len(reports[c])-1]
			return ntpOf(last, g.ts, c).Sub(ntpOf(origin[c][0], w.ts, c))
		})
		t.Logf("%s: %d packets matched by payload with the origin's; NTP of their RTP time by the edge's last sender report, worst distance from the origin's, by clock rate: %v",
			name, n, worst)
		if n < 100 || len(worst) != 2 {
			t.Errorf("%s: %d packets of %d tracks matched, want 100 or more of 2", name, n, len(worst))
		}
		for c, d := range worst {
			if d > 2*time.Millisecond {
				t.Errorf("%s, clock %d: the edge's NTP is %v from the origin's", name, c, d)
			}
		}
	}
}

// matchInstants pairs the packets of got and want received once each, by
// payload (their sessions' timestamps may be offset), and returns the worst
// |dist| per clock rate and how many pairs there were.
func matchInstants(got, want []rxRTP, clock map[uint32]uint32, dist func(g, w rxRTP, clock uint32) time.Duration) (map[uint32]time.Duration, int) {
	once := func(ps []rxRTP) map[[32]byte]rxRTP {
		m, dup := map[[32]byte]rxRTP{}, map[[32]byte]bool{}
		for _, p := range ps {
			if _, ok := m[p.sum]; ok {
				dup[p.sum] = true
			}
			m[p.sum] = p
		}
		for h := range dup {
			delete(m, h)
		}
		return m
	}
	w := once(want)
	worst, n := map[uint32]time.Duration{}, 0
	for h, g := range once(got) {
		wp, ok := w[h]
		if !ok {
			continue
		}
		c := clock[g.ssrc]
		d := dist(g, wp, c)
		if d < 0 {
			d = -d
		}
		worst[c] = max(worst[c], d)
		n++
	}
	return worst, n
}

// TestByeAfterLateLastPacket: when a recording still filling falls behind
// the replay, its last packet leaves late; the end's SR + BYE still follows
// it by byeGrace, counted from when it left, so that a player that stops at
// the BYE has it (over UDP the BYE comes on another socket). Through a node
// filling from gst-rtsp-server or from a peer, GStreamer over UDP lost a
// play's last frames when the BYE left with them.
func TestByeAfterLateLastPacket(t *testing.T) {
	t.Parallel()
	const frames, fps = 25, 25
	st := newStore(t)
	w, err := st.Create(store.Manifest{Key: "late", SDP: []byte(synthSDP), Duration: time.Second,
		Tracks: []store.Track{{Control: "trackID=0", Media: "video", PayloadType: 96, ClockRate: 90000, Codec: "H264"}}})
	if err != nil {
		t.Fatal(err)
	}
	frame := func(f int) {
		t.Helper()
		ft := store.FrameP
		payload := []byte{0x60 | 28, 0x80 | 0x40 | 1, byte(f)} // FU-A, start and end of one slice
		if f == 0 {
			ft, payload[1] = store.FrameKey, 0x80|0x40|5
		}
		raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(f),
			Timestamp: uint32(f * 90000 / fps), SSRC: 1, Marker: true}, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pk := store.Packet{TT: time.Duration(f) * time.Second / fps, FT: ft, PN: uint64(f), RTP: raw}
		if f == 0 {
			pk.Flags |= store.FlagKeyStart
		}
		if err := w.Append(pk); err != nil {
			t.Fatal(err)
		}
	}
	for f := 0; f < frames-1; f++ {
		frame(f)
	}
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st), Transports: []string{"tcp", "udp"},
		UDPRTPAddress: "127.0.0.1:0"})
	p := newRTCPPlayer(t, serverURL(s, "late"), gortsplib.TransportUDP)
	if _, err := p.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	testkit.Eventually(t, 10*time.Second, "the packets stored so far", func() bool {
		_, pkts, _ := p.snapshot()
		return len(pkts) == frames-1
	})
	// The last frame is stored well after its time and byeGrace: the
	// replay waits for it at the tail.
	<-time.After(time.Until(started.Add(time.Second + 2*byeGrace)))
	frame(frames - 1)
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the BYE", func() bool { return p.byes() > 0 })
	cs, pkts, _ := p.snapshot()
	if len(pkts) != frames {
		t.Fatalf("got %d packets, want %d", len(pkts), frames)
	}
	var bye time.Time
	for _, c := range cs {
		if _, ok := c.pkts[len(c.pkts)-1].(*rtcp.Goodbye); ok {
			bye = c.at
		}
	}
	last := pkts[len(pkts)-1].at
	t.Logf("the last packet came %v after the play started, the BYE %v after it",
		last.Sub(started).Round(time.Millisecond), bye.Sub(last).Round(time.Millisecond))
	if gap := bye.Sub(last); gap < byeGrace*3/4 {
		t.Fatalf("the BYE came %v after the late last packet, want about %v", gap, byeGrace)
	}
}
