package rtspedge

import (
	"context"
	"errors"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/store"
)

// synthSpec describes a synthetic H.264-like recording: fps frames a
// second, perFrame packets of size bytes each, a key frame every gop frames.
type synthSpec struct {
	dur      time.Duration
	fps      int
	perFrame int
	size     int
	gop      int
}

// synthSDP is a one-track H.264 description.
const synthSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=synthetic\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=rtpmap:96 H264/90000\r\n" +
	"a=fmtp:96 packetization-mode=1; profile-level-id=42C01E; sprop-parameter-sets=Z0LAHtoCgL/lwEQAAAMABAAAAwDIPFi6gA==,aM48gA==\r\n"

// synthRecording stores a complete synthetic recording under key and
// returns its packet count.
func synthRecording(t testing.TB, st *store.Store, key string, sp synthSpec) int {
	t.Helper()
	n, err := writeSynth(st, key, sp)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writeSynth writes the recording of synthRecording. Every frame is FU-A
// fragments of one slice; a key frame's first packet starts an IDR.
func writeSynth(st *store.Store, key string, sp synthSpec) (int, error) {
	w, err := st.Create(store.Manifest{
		Key: key, SDP: []byte(synthSDP), Duration: sp.dur,
		Tracks: []store.Track{{Control: "trackID=0", Media: "video", PayloadType: 96, ClockRate: 90000, Codec: "H264"}},
	})
	if err != nil {
		return 0, err
	}
	frames := int(sp.dur * time.Duration(sp.fps) / time.Second)
	payload := make([]byte, sp.size)
	pn := uint64(0)
	seq := uint16(1000)
	for f := 0; f < frames; f++ {
		key := f%sp.gop == 0
		nal := byte(1)
		ft := store.FrameP
		if key {
			nal, ft = 5, store.FrameKey
		}
		tt := time.Duration(f) * time.Second / time.Duration(sp.fps)
		for k := 0; k < sp.perFrame; k++ {
			payload[0] = 0x60 | 28 // FU-A
			payload[1] = nal
			if k == 0 {
				payload[1] |= 0x80
			}
			if k == sp.perFrame-1 {
				payload[1] |= 0x40
			}
			payload[2] = byte(f)
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq,
				Timestamp: uint32(f * 90000 / sp.fps), SSRC: 1, Marker: k == sp.perFrame-1}, Payload: payload}
			raw, err := pkt.Marshal()
			if err != nil {
				return 0, err
			}
			p := store.Packet{Track: 0, TT: tt, FT: ft, PN: pn, RTP: raw}
			if key && k == 0 {
				p.Flags |= store.FlagKeyStart
			}
			if err := w.Append(p); err != nil {
				return 0, err
			}
			pn++
			seq++
		}
	}
	return int(pn), w.Finish(store.StateComplete)
}

// rxPacket is what a test player received.
type rxPacket struct {
	seq      uint16
	ts       uint32
	keyStart bool      // starts a key frame (video)
	at       time.Time // arrival, of the first packet only (of every one with stampAll)
}

// testPlayer is an in-process gortsplib client that records what it gets.
type testPlayer struct {
	c    *gortsplib.Client
	desc *description.Session
	url  *base.URL

	mu     sync.Mutex
	pkts   []rxPacket
	lost   uint64
	byes   int           // RTCP BYE packets received
	arrive chan struct{} // signalled (non-blocking) on every packet
	// stampAll: every packet gets its arrival time, not only the first.
	stampAll bool
}

// newTestPlayer connects, DESCRIBEs and SETUPs every track; Play starts it.
func newTestPlayer(t testing.TB, url string, tr gortsplib.Transport) *testPlayer {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPlayer{url: u, arrive: make(chan struct{}, 1)}
	p.c = &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr, ReadTimeout: 30 * time.Second,
		OnPacketsLost: func(n uint64) { p.mu.Lock(); p.lost += n; p.mu.Unlock() },
		OnDecodeError: func(error) {}}
	// The label marks the client's goroutines in CPU profiles.
	var err2 error
	pprof.Do(context.Background(), pprof.Labels("side", "player"), func(context.Context) { err2 = p.c.Start2() })
	if err2 != nil {
		t.Fatal(err2)
	}
	t.Cleanup(p.c.Close)
	desc, _, err := p.c.Describe(u)
	if err != nil {
		t.Fatalf("DESCRIBE: %v", err)
	}
	p.desc = desc
	if err := p.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("SETUP: %v", err)
	}
	p.c.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		rx := rxPacket{seq: pkt.SequenceNumber, ts: pkt.Timestamp}
		if medi.Type == description.MediaTypeVideo {
			_, rx.keyStart = metainfo.FrameTypeH264(pkt.Payload)
		}
		p.mu.Lock()
		if len(p.pkts) == 0 || p.stampAll {
			rx.at = time.Now() // only the first by default: keep the clock off the per-packet path
		}
		p.pkts = append(p.pkts, rx)
		p.mu.Unlock()
		select {
		case p.arrive <- struct{}{}:
		default:
		}
	})
	p.c.OnPacketRTCPAny(func(_ *description.Media, pkt rtcp.Packet) {
		if _, ok := pkt.(*rtcp.Goodbye); ok {
			p.mu.Lock()
			p.byes++
			p.mu.Unlock()
		}
	})
	return p
}

func (p *testPlayer) play(t testing.TB, from *time.Duration) *base.Response {
	t.Helper()
	var rng *headers.Range
	if from != nil {
		rng = &headers.Range{Value: &headers.RangeNPT{Start: *from}}
	}
	res, err := p.c.Play(rng)
	if err != nil {
		t.Fatalf("PLAY: %v", err)
	}
	return res
}

// ended reports whether an RTCP BYE came: the server sent every packet.
func (p *testPlayer) ended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byes > 0
}

func (p *testPlayer) received() []rxPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rxPacket(nil), p.pkts...)
}

// waitPackets waits until the player has at least n packets.
func (p *testPlayer) waitPackets(t testing.TB, n int, d time.Duration) []rxPacket {
	t.Helper()
	deadline := time.After(d)
	for {
		if got := p.received(); len(got) >= n {
			return got
		}
		select {
		case <-p.arrive:
		case <-deadline:
			t.Fatalf("got %d packets in %v, want %d", len(p.received()), d, n)
		}
	}
}

// rtpInfo returns the seq and rtptime of the first RTP-Info entry.
func rtpInfo(t testing.TB, res *base.Response) (uint16, uint32) {
	t.Helper()
	var ri headers.RTPInfo
	if err := ri.Unmarshal(res.Header["RTP-Info"]); err != nil || len(ri) == 0 ||
		ri[0].SequenceNumber == nil || ri[0].Timestamp == nil {
		t.Fatalf("RTP-Info %v: %v", res.Header["RTP-Info"], err)
	}
	return *ri[0].SequenceNumber, *ri[0].Timestamp
}

func describeStatus(t testing.TB, url string) int {
	t.Helper()
	c, u, err := interop.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = c.Describe(u)
	if err == nil {
		return 200
	}
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return int(bad.Code)
	}
	t.Fatalf("DESCRIBE %s: %v", url, err)
	return 0
}
