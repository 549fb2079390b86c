// Package fakeorigin is an RTSP origin for tests that need what a
// well-behaved origin never does: answer DESCRIBE with a redirect, demand
// Basic or Digest credentials, send far more than its SDP announces, or send
// RTP packets no player can receive. It speaks just enough RTSP 1.0 over TCP
// (OPTIONS, DESCRIBE, SETUP with TCP-interleaved transport, PLAY, TEARDOWN,
// GET_PARAMETER), writes its interleaved frames by hand (so a packet may be
// up to 65535 bytes), and records every connection and request it gets.
//
// It listens on 127.0.0.1 only and is used by tests alone.
package fakeorigin

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/pion/rtcp"
)

// Config says how the origin behaves. The zero value serves a 2 s H.264
// stream of 50 packets of 1200 bytes, without credentials.
type Config struct {
	// Duration is announced in the SDP (a=range:npt=0-<Duration>) and in
	// the PLAY answer; the packets' timestamps spread over it. Default 2s.
	Duration time.Duration
	// Redirects answers a DESCRIBE of a path (without the leading '/')
	// with 302 Found and a Location; a Location that starts with '/' is
	// on this origin.
	Redirects map[string]string
	// Auth demands credentials User:Pass on every request: "basic" or
	// "digest" (MD5); "" asks for none.
	Auth       string
	User, Pass string
	// PacketSize is the size of each RTP packet sent after PLAY, the
	// 12-byte header included (at most 65535). Default 1200.
	PacketSize int
	// Packets is how many RTP packets PLAY sends before RTCP BYE. Default 50.
	Packets int
	// Interval between two packets; 0 sends as fast as the connection
	// takes them.
	Interval time.Duration
}

// Request is what the origin received: the method, the URL (without user
// info) and the Authorization header, if any.
type Request struct {
	Method        string
	URL           string
	Authorization string
}

// Server is a running fake origin.
type Server struct {
	cfg Config
	ln  net.Listener
	wg  sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	accepted int
	requests []Request
	sent     int64 // RTP bytes written
}

const (
	realm = "fakeorigin"
	nonce = "0123456789abcdef0123456789abcdef"
)

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 2 * time.Second
	}
	if cfg.PacketSize == 0 {
		cfg.PacketSize = 1200
	}
	if cfg.PacketSize < 14 || cfg.PacketSize > 65535 {
		return nil, fmt.Errorf("fakeorigin: PacketSize %d is not 14-65535", cfg.PacketSize)
	}
	if cfg.Packets == 0 {
		cfg.Packets = 50
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Go(s.accept)
	return s, nil
}

// StartT is Start for a test: it fails the test if the origin cannot start
// and closes it when the test ends.
func StartT(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Addr is the origin's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is rtsp://<Addr>/<path>.
func (s *Server) URL(path string) string { return "rtsp://" + s.Addr() + "/" + path }

// Accepted is how many connections the origin accepted.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Requests are the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// SentBytes is how many RTP bytes the origin wrote to its clients.
func (s *Server) SentBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// Close stops listening, closes every connection and waits for them.
func (s *Server) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepted++
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			s.serve(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			_ = nc.Close()
		})
	}
}

// session is one connection's state.
type session struct {
	s       *Server
	nc      net.Conn
	c       *conn.Conn
	writeMu sync.Mutex
	playing bool
}

func (s *Server) serve(nc net.Conn) {
	ss := &session{s: s, nc: nc, c: conn.NewConn(nc)}
	var streamWG sync.WaitGroup
	defer streamWG.Wait()
	defer nc.Close()
	for {
		what, err := ss.c.Read()
		if err != nil {
			return
		}
		req, ok := what.(*base.Request)
		if !ok {
			continue // RTCP receiver reports from the client
		}
		r := Request{Method: string(req.Method), Authorization: strings.Join(req.Header["Authorization"], ", ")}
		if req.URL != nil {
			r.URL = req.URL.CloneWithoutCredentials().String()
		}
		s.mu.Lock()
		s.requests = append(s.requests, r)
		s.mu.Unlock()
		res := ss.answer(req)
		if cseq, ok := req.Header["CSeq"]; ok {
			res.Header["CSeq"] = cseq
		}
		if err := ss.write(func() error { return ss.c.WriteResponse(res) }); err != nil {
			return
		}
		if req.Method == base.Play && res.StatusCode == base.StatusOK && !ss.playing {
			ss.playing = true
			streamWG.Go(ss.stream)
		}
	}
}

func (ss *session) write(fn func() error) error {
	ss.writeMu.Lock()
	defer ss.writeMu.Unlock()
	_ = ss.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return fn()
}

func (ss *session) answer(req *base.Request) *base.Response {
	cfg := ss.s.cfg
	h := base.Header{}
	if cfg.Auth != "" && req.Method != base.Options {
		methods := []auth.VerifyMethod{auth.VerifyMethodDigestMD5}
		if cfg.Auth == "basic" {
			methods = []auth.VerifyMethod{auth.VerifyMethodBasic}
		}
		if err := auth.Verify(req, cfg.User, cfg.Pass, methods, realm, nonce); err != nil {
			h["WWW-Authenticate"] = auth.GenerateWWWAuthenticate(methods, realm, nonce)
			return &base.Response{StatusCode: base.StatusUnauthorized, Header: h}
		}
	}
	switch req.Method {
	case base.Options:
		h["Public"] = base.HeaderValue{"OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"}
		return &base.Response{StatusCode: base.StatusOK, Header: h}
	case base.Describe:
		if loc, ok := cfg.Redirects[strings.TrimPrefix(req.URL.Path, "/")]; ok {
			if strings.HasPrefix(loc, "/") {
				loc = "rtsp://" + ss.s.Addr() + loc
			}
			h["Location"] = base.HeaderValue{loc}
			return &base.Response{StatusCode: base.StatusFound, Header: h}
		}
		h["Content-Type"] = base.HeaderValue{"application/sdp"}
		h["Content-Base"] = base.HeaderValue{req.URL.CloneWithoutCredentials().String() + "/"}
		return &base.Response{StatusCode: base.StatusOK, Header: h, Body: ss.s.sdp()}
	case base.Setup:
		h["Transport"] = base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1"}
		h["Session"] = base.HeaderValue{"fake1;timeout=60"}
		return &base.Response{StatusCode: base.StatusOK, Header: h}
	case base.Play:
		h["Session"] = base.HeaderValue{"fake1"}
		h["Range"] = base.HeaderValue{fmt.Sprintf("npt=0.000-%.3f", cfg.Duration.Seconds())}
		h["RTP-Info"] = base.HeaderValue{"url=" + req.URL.CloneWithoutCredentials().String() + "/trackID=0;seq=0;rtptime=0"}
		return &base.Response{StatusCode: base.StatusOK, Header: h}
	case base.Teardown, base.GetParameter:
		return &base.Response{StatusCode: base.StatusOK, Header: h}
	}
	return &base.Response{StatusCode: base.StatusNotImplemented, Header: h}
}

func (s *Server) sdp() []byte {
	return []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
		fmt.Sprintf("a=range:npt=0-%.3f\r\n", s.cfg.Duration.Seconds()) +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
		"a=fmtp:96 packetization-mode=1\r\n" +
		"a=control:trackID=0\r\n")
}

// stream sends the configured packets on channel 0, timestamps spread over
// the duration, the first an IDR slice, then RTCP BYE on channel 1. It stops
// early when a write fails (the client went away).
func (ss *session) stream() {
	cfg := ss.s.cfg
	step := uint32(cfg.Duration.Seconds() * 90000 / float64(cfg.Packets))
	pkt := make([]byte, cfg.PacketSize)
	frame := base.InterleavedFrame{Channel: 0}
	buf := make([]byte, 4+cfg.PacketSize)
	var tick *time.Ticker
	if cfg.Interval > 0 {
		tick = time.NewTicker(cfg.Interval)
		defer tick.Stop()
	}
	for i := range cfg.Packets {
		pkt[0] = 0x80
		pkt[1] = 96 | 0x80 // marker: one packet per frame
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i)*step)
		binary.BigEndian.PutUint32(pkt[8:], 0x11223344)
		pkt[12] = 0x41 // non-IDR slice
		if i == 0 {
			pkt[12] = 0x65 // IDR slice
		}
		frame.Payload = pkt
		if err := ss.write(func() error { return ss.c.WriteInterleavedFrame(&frame, buf) }); err != nil {
			return
		}
		ss.s.mu.Lock()
		ss.s.sent += int64(len(pkt))
		ss.s.mu.Unlock()
		if tick != nil {
			<-tick.C
		}
	}
	bye, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 0x11223344},
		&rtcp.Goodbye{Sources: []uint32{0x11223344}},
	})
	if err != nil {
		return
	}
	frame = base.InterleavedFrame{Channel: 1, Payload: bye}
	_ = ss.write(func() error { return ss.c.WriteInterleavedFrame(&frame, buf) })
}
