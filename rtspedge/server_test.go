package rtspedge

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestDescribeStatus: errors of Recordings become RTSP status codes.
func TestDescribeStatus(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	synthRecording(t, st, "ok", synthSpec{dur: time.Second, fps: 25, perFrame: 2, size: 200, gop: 25})
	recs := newTestRecordings(t, st)
	recs.errs["unknown"] = fmt.Errorf("map path: %w", ErrUnknownOrigin)
	recs.errs["bad"] = fmt.Errorf("map path: %w", ErrBadPath)
	recs.errs["down"] = fmt.Errorf("fill: %w", ErrOriginUnavailable)
	recs.errs["gone"] = &OriginStatusError{Method: "DESCRIBE", Code: 404}
	recs.errs["odd"] = fmt.Errorf("something else")
	s := startServer(t, ServerConfig{Recordings: recs})
	for path, want := range map[string]int{"ok": 200, "unknown": 404, "bad": 400, "down": 503,
		"gone": 404, "odd": 500, "nothing-here": 404} {
		if got := describeStatus(t, serverURL(s, path)); got != want {
			t.Errorf("DESCRIBE %s: %d, want %d", path, got, want)
		}
	}
}

// TestPlayPauseSeek: RTP-Info matches the first packet, PAUSE stops the
// clock, PLAY resumes, a seek starts at a key frame, and sequence numbers and
// timestamps stay continuous for the session throughout, over TCP and UDP.
// Over UDP a packet sent before the PAUSE answer may be read after it: RTP-Info
// after a seek names the PLAY's first packet, so every such packet has an
// earlier sequence number (RFC 2326 12.33; rtspsrc reads them after its
// seek's flush, README Testing).
func TestPlayPauseSeek(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	synthRecording(t, st, "v", synthSpec{dur: 10 * time.Second, fps: 25, perFrame: 4, size: 500, gop: 25})
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st), Transports: []string{"tcp", "udp"},
				UDPRTPAddress: "127.0.0.1:0"})
			playPauseSeek(t, s, newTestPlayer(t, serverURL(s, "v"), tr))
		})
	}
}

func playPauseSeek(t *testing.T, s *Server, p *testPlayer) {
	// check finds the packet RTP-Info names among those received from
	// index from on: no packet from there on before it may be of the PLAY
	// (a later sequence number), and it starts a key frame after a seek.
	check := func(res *base.Response, from int, wantKey bool) []rxPacket {
		t.Helper()
		seq, ts := rtpInfo(t, res)
		got := p.waitPackets(t, from+20, 5*time.Second)
		for i := from; i < len(got); i++ {
			if got[i].seq == seq {
				if got[i].ts != ts {
					t.Fatalf("first packet seq %d ts %d, RTP-Info seq %d rtptime %d", got[i].seq, got[i].ts, seq, ts)
				}
				if wantKey && !got[i].keyStart {
					t.Fatalf("first packet after PLAY does not start a key frame")
				}
				return got
			}
			if int16(got[i].seq-seq) > 0 {
				t.Fatalf("packet %d (seq %d) arrived before the PLAY's first, RTP-Info seq %d", i, got[i].seq, seq)
			}
		}
		t.Fatalf("no packet with RTP-Info's seq %d among %d", seq, len(got)-from)
		return nil
	}
	check(p.play(t, nil), 0, true)

	if _, err := p.c.Pause(); err != nil {
		t.Fatal(err)
	}
	// The clock stopped: nothing is sent while paused (over UDP, what was
	// sent before the answer may still be read after it).
	paused := s.Stats().PacketsSent
	<-time.After(300 * time.Millisecond)
	if n := s.Stats().PacketsSent; n != paused {
		t.Fatalf("%d packets sent while paused", n-paused)
	}
	got := p.waitPackets(t, int(paused), 5*time.Second)
	check(p.play(t, nil), len(got), false)

	if _, err := p.c.Pause(); err != nil {
		t.Fatal(err)
	}
	got = p.received()
	from := 5 * time.Second
	res := p.play(t, &from)
	if r := res.Header["Range"]; len(r) != 1 || !strings.HasPrefix(r[0], "npt=5.000-10.000") {
		t.Fatalf("Range after seek: %v", r)
	}
	all := check(res, len(got), true)

	for i := 1; i < len(all); i++ {
		if all[i].seq != all[i-1].seq+1 {
			t.Fatalf("packet %d: seq %d after %d", i, all[i].seq, all[i-1].seq)
		}
		if d := int32(all[i].ts - all[i-1].ts); d < 0 {
			t.Fatalf("packet %d: timestamp goes back by %d", i, -d)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lost != 0 {
		t.Fatalf("client counted %d lost packets", p.lost)
	}
}

// TestSeekNextToPausePosition: a PLAY with a Range after a PAUSE seeks to
// the key frame at or before it even when the Range is next to where the
// session paused. A player seeking that way (rtspsrc: PAUSE, flush, PLAY
// npt=T-) flushed its decoders; resumed mid-GOP it cannot decode what it
// gets up to the next key frame (the interop matrix's GStreamer seek cell
// once decoded 87 of 100 frames from the key frame, its first broken, when
// its PAUSE came 38 ms after its seek target).
func TestSeekNextToPausePosition(t *testing.T) {
	t.Parallel()
	const fps, perFrame, gop = 25, 4, 25
	st := newStore(t)
	synthRecording(t, st, "v", synthSpec{dur: 10 * time.Second, fps: fps, perFrame: perFrame, size: 500, gop: gop})
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})
	p := newTestPlayer(t, serverURL(s, "v"), gortsplib.TransportTCP)
	p.play(t, nil)
	// Pause mid-GOP: the first PLAY sends every stored packet in order,
	// so the session stops before stored packet n, of frame n/perFrame.
	var frame int
	for {
		p.waitPackets(t, len(p.received())+perFrame*fps/2, 10*time.Second)
		if _, err := p.c.Pause(); err != nil {
			t.Fatal(err)
		}
		frame = len(p.received()) / perFrame
		if k := frame % gop; k >= 3 && k <= gop-3 {
			break
		}
		p.play(t, nil)
	}
	paused := time.Duration(frame) * time.Second / fps
	got := p.received()
	target := paused + 20*time.Millisecond
	res := p.play(t, &target)
	key := paused - time.Duration(frame%gop)*time.Second/fps
	if r := res.Header["Range"]; len(r) != 1 || !strings.HasPrefix(r[0], "npt="+formatNPT(key)+"-") {
		t.Fatalf("paused at %v, PLAY npt=%v-: answer Range %v, want the key frame's, npt=%s-", paused, target, r, formatNPT(key))
	}
	seq, _ := rtpInfo(t, res)
	after := p.waitPackets(t, len(got)+perFrame, 5*time.Second)[len(got):]
	for _, rx := range after {
		if rx.seq == seq {
			if !rx.keyStart {
				t.Fatalf("paused at %v, PLAY npt=%v-: the first packet does not start a key frame", paused, target)
			}
			return
		}
	}
	t.Fatalf("no packet with RTP-Info's seq %d among %d after the PLAY", seq, len(after))
}

// TestGarbageOnRTSPPort: connections sending junk are closed without
// disturbing a player that is playing, and the server keeps answering.
func TestGarbageOnRTSPPort(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	synthRecording(t, st, "v", synthSpec{dur: 10 * time.Second, fps: 25, perFrame: 4, size: 500, gop: 25})
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})
	p := newTestPlayer(t, serverURL(s, "v"), gortsplib.TransportTCP)
	p.play(t, nil)
	p.waitPackets(t, 20, 5*time.Second)
	for _, junk := range []string{
		"\x00\x01\x02\xff\xfe garbage \r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"DESCRIBE rtsp://x/v RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\nabc",
		"$\x00\xff\xffshort",
		strings.Repeat("A", 70000),
	} {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte(junk))
		_ = c.Close()
	}
	n := len(p.received())
	p.waitPackets(t, n+50, 5*time.Second)
	if got := describeStatus(t, serverURL(s, "v")); got != 200 {
		t.Fatalf("DESCRIBE after garbage: %d", got)
	}
	all := p.received()
	for i := 1; i < len(all); i++ {
		if all[i].seq != all[i-1].seq+1 {
			t.Fatalf("packet %d: seq %d after %d", i, all[i].seq, all[i-1].seq)
		}
	}
}

// rawPlayer does DESCRIBE/SETUP/PLAY over TCP by hand on a connection with
// a tiny receive buffer, and then never reads: the slowest player possible.
func rawPlayer(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	u := "rtsp://" + addr + "/" + path
	session := ""
	for i, req := range []string{
		"DESCRIBE " + u + " RTSP/1.0\r\nCSeq: 1\r\n\r\n",
		"SETUP " + u + "/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
		"PLAY " + u + "/ RTSP/1.0\r\nCSeq: 3\r\nSession: %s\r\n\r\n",
	} {
		if strings.Contains(req, "%s") {
			req = fmt.Sprintf(req, session)
		}
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		var res base.Response
		if err := res.Unmarshal(br); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if res.StatusCode != base.StatusOK {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		if v := res.Header["Session"]; len(v) == 1 {
			session, _, _ = strings.Cut(v[0], ";")
		}
	}
	return c
}

// TestSlowPlayerDroppedAlone: a player that stops reading fills its queue
// and is closed, counted once; another player of the same stream gets every
// packet meanwhile.
func TestSlowPlayerDroppedAlone(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	// About 11 Mbit/s so that the slow player's socket buffers (up to the
	// 4 MiB send buffer autotuning may give it) fill within seconds.
	synthRecording(t, st, "v", synthSpec{dur: 20 * time.Second, fps: 50, perFrame: 20, size: 1400, gop: 50})
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st)})
	good := newTestPlayer(t, serverURL(s, "v"), gortsplib.TransportTCP)
	rawPlayer(t, s.Addr().String(), "v")
	good.play(t, nil)
	testkit.Eventually(t, 12*time.Second, "the slow player dropped", func() bool { return s.Stats().SlowDropped == 1 })
	testkit.Eventually(t, 5*time.Second, "the slow player's session closed", func() bool { return s.Stats().Sessions == 1 })
	n := len(good.received())
	got := good.waitPackets(t, n+1000, 5*time.Second)
	for i := 1; i < len(got); i++ {
		if got[i].seq != got[i-1].seq+1 {
			t.Fatalf("good player: packet %d seq %d after %d", i, got[i].seq, got[i-1].seq)
		}
	}
	if st := s.Stats(); st.SlowDropped != 1 || st.Sessions != 1 {
		t.Fatalf("stats %+v, want one slow player dropped and one session left", st)
	}
}

// TestUDPQueueFullDropsPacketsNotPlayer: a UDP player whose queue is full
// (this process's writer behind it, not the player: UDP has no flow
// control) loses packets, not its session. With a queue of one packet, a
// frame's packets, handed at once, overflow it (and its sender reports
// find it full): the player plays to the end (the BYE, handed again until
// the queue takes it, comes), every packet is either handed over or
// counted as dropped, and the sequence numbers show the holes.
func TestUDPQueueFullDropsPacketsNotPlayer(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	spec := synthSpec{dur: 3 * time.Second, fps: 25, perFrame: 7, size: 1400, gop: 25}
	synthRecording(t, st, "v", spec)
	total := 3 * 25 * 7
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st), Transports: []string{"udp"},
		UDPRTPAddress: "127.0.0.1:0", WriteQueueSize: 1})
	p := newTestPlayer(t, serverURL(s, "v"), gortsplib.TransportUDP)
	p.play(t, nil)
	testkit.Eventually(t, 15*time.Second, "the player's BYE (played to the end)", p.ended)
	got, st2 := p.received(), s.Stats()
	if st2.SlowDropped != 0 || st2.UDPDropped == 0 {
		t.Fatalf("stats %+v: want packets dropped (a queue of one, frames of 7 packets) and no player", st2)
	}
	if st2.PacketsSent+st2.UDPDropped != uint64(total) {
		t.Fatalf("handed over %d + dropped %d packets, want the recording's %d", st2.PacketsSent, st2.UDPDropped, total)
	}
	// The player got what was handed over, less what gortsplib's reorderer
	// still held at the end, waiting for a dropped packet (at most 64).
	if n := uint64(len(got)); n > st2.PacketsSent || n+64 < st2.PacketsSent {
		t.Fatalf("the player got %d packets of the %d handed over", n, st2.PacketsSent)
	}
	// The player reads datagrams in order on loopback; a dropped packet's
	// sequence number is skipped, not reused.
	if span := int(got[len(got)-1].seq-got[0].seq) + 1; span > total || span < len(got) {
		t.Fatalf("sequence numbers %d to %d for %d packets of %d", got[0].seq, got[len(got)-1].seq, len(got), total)
	}
	t.Logf("%d of %d packets received, %d dropped at the full queue", len(got), total, st2.UDPDropped)
}

// TestLiveRelay: a live origin is relayed to a player through the store's
// live recording: the player joins at a key frame and gets continuous
// packets.
func TestLiveRelay(t *testing.T) {
	t.Parallel()
	o, _ := startOrigin(t, origin.Config{Media: map[string][]byte{}, Live: map[string][]byte{"live.ts": origin.SampleClip()}})
	st := newStore(t)
	recs := newTestRecordings(t, st)
	recs.origins["live"] = originURL(o, "live.ts")
	s := startServer(t, ServerConfig{Recordings: recs})
	p := newTestPlayer(t, serverURL(s, "live"), gortsplib.TransportTCP)
	if r := p.desc.Medias; len(r) != 2 {
		t.Fatalf("%d media", len(r))
	}
	res := p.play(t, nil)
	if r := res.Header["Range"]; len(r) != 1 || !strings.HasSuffix(r[0], "-") {
		t.Fatalf("live Range %v, want an open range", r)
	}
	got := p.waitPackets(t, 100, 10*time.Second)
	if !got[0].keyStart {
		t.Fatalf("live play does not start at a key frame")
	}
}

// TestOriginDiesWhileServing: a player tailing a fill gets a clean end (RTCP
// BYE on every track) when the origin dies; the recording is partial.
func TestOriginDiesWhileServing(t *testing.T) {
	t.Parallel()
	o, stop := startOrigin(t, origin.Config{})
	st := newStore(t)
	recs := newTestRecordings(t, st)
	recs.origins["x"] = originURL(o, samplePath)
	s := startServer(t, ServerConfig{Recordings: recs})
	p := newTestPlayer(t, serverURL(s, "x"), gortsplib.TransportTCP)
	p.play(t, nil)
	p.waitPackets(t, 50, 10*time.Second)
	stop()
	testkit.Eventually(t, 10*time.Second, "BYE on both tracks", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.byes == 2
	})
	if m, err := st.Manifest("x"); err != nil || m.State != store.StatePartial {
		t.Fatalf("recording state %v (err %v), want partial", m.State, err)
	}
}

// TestTCPSendAhead: a TCP player gets each packet at most SendAhead (and
// one step of the replay's wake grid) before its time, in batches, and
// none late: packet i arrives (tt_i - tt_0) after the first, give or take.
func TestTCPSendAhead(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	synthRecording(t, st, "v", synthSpec{dur: 3 * time.Second, fps: 25, perFrame: 4, size: 500, gop: 25})
	const ahead = 80 * time.Millisecond
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st), SendAhead: ahead})
	p := newTestPlayer(t, serverURL(s, "v"), gortsplib.TransportTCP)
	type arrival struct {
		ts uint32
		at time.Time
	}
	var mu sync.Mutex
	var got []arrival
	p.c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
		mu.Lock()
		got = append(got, arrival{pkt.Timestamp, time.Now()})
		mu.Unlock()
	})
	p.play(t, nil)
	const want = 2 * 25 * 4 // 2 s of media
	testkit.Eventually(t, 10*time.Second, "2 s of packets", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= want
	})
	mu.Lock()
	defer mu.Unlock()
	// lead: how much sooner than its time a packet arrived, against the
	// first (sent at once, in the first batch).
	var most, least time.Duration
	for _, a := range got[:want] {
		media := time.Duration(a.ts-got[0].ts) * time.Second / 90000
		lead := media - a.at.Sub(got[0].at)
		most, least = max(most, lead), min(least, lead)
	}
	t.Logf("packets arrived from %v late to %v early", -least, most)
	// The margin is for a loaded machine delaying the first packet's read.
	if limit := ahead + ahead/wakeGrid + 40*time.Millisecond; most > limit {
		t.Fatalf("a packet arrived %v before its time, more than %v", most, limit)
	}
	if most < ahead/2 {
		t.Fatalf("packets arrived at most %v before their time: not sent ahead", most)
	}
	if least < -500*time.Millisecond {
		t.Fatalf("a packet arrived %v late", -least)
	}
}
