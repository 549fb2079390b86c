package rtspedge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/rtspmesh/rtspmesh/store"
)

// Recordings resolves a player's request path to a recording it can read.
// Package node implements it (path mapping to configured origins, fills,
// store lookups). path is the request path without the leading slash:
// "<origin-name>/<path>[?query]".
type Recordings interface {
	Open(ctx context.Context, path string) (Recording, error)
}

// Recording is one stream a player reads.
type Recording interface {
	// Manifest describes the stream: SDP, tracks, duration, live.
	Manifest() store.Manifest
	// NewReader reads the packets from the key frame at or before from.
	NewReader(from time.Duration) (*store.Reader, error)
	// Span is the stored window now: the tt of the oldest packet and of
	// the newest (store.ErrEmpty before the first). A live PLAY places
	// its Range in it.
	Span() (first, last time.Duration, err error)
	// Close says the player is gone.
	Close()
}

// DeliveryCounter is implemented by a Recording that counts what its
// player is sent: the server calls Delivered from the replay after each
// batch of RTP packets it hands to the session (bytes: header and payload,
// as ServerStats.BytesSent counts them). It must not block.
type DeliveryCounter interface {
	Delivered(packets, bytes uint64)
}

// Transports a server can offer players.
const (
	TransportTCP = "tcp" // RTP interleaved in the RTSP connection
	TransportUDP = "udp" // RTP and RTCP over UDP unicast
)

// ServerConfig configures the RTSP server players connect to.
type ServerConfig struct {
	// Listen is the RTSP (TCP) address, e.g. ":8554". Port 0 picks a free
	// port; Addr says which.
	Listen string
	// UDPRTPAddress and UDPRTCPAddress are the UDP addresses for RTP and
	// RTCP (an even port and the next one). Both are required for UDP. A
	// UDPRTPAddress with port 0 picks a free even/odd pair on its host (then
	// UDPRTCPAddress may be empty).
	UDPRTPAddress, UDPRTCPAddress string
	// Transports offered to players: "tcp", "udp". It defaults to tcp, plus
	// udp when UDP addresses are set.
	Transports []string
	// Recordings resolves request paths. Required.
	Recordings Recordings
	// Logger receives session-level events, never one line per packet.
	// It defaults to discarding.
	Logger *slog.Logger
	// WriteQueueSize is the number of packets queued per UDP player before
	// its packets are dropped (counted in ServerStats.UDPDropped; a player
	// whose queue takes nothing for 2 s is closed). A TCP player's packets
	// are written to its connection by the replay, and a TCP player is too
	// slow when its connection takes nothing for 2 s. A replay batch is at
	// most half of it. A power of two; default 256 (gortsplib keeps a queue
	// of this many slots per session, TCP or UDP).
	WriteQueueSize int
	// ReadTimeout and WriteTimeout bound RTSP reads and writes of a
	// connection. They default to 10s.
	ReadTimeout, WriteTimeout time.Duration
	// SendAhead: a replay wake-up sends every packet due within this much
	// of its next packet's time, so packets leave at most this early, and
	// one step of the wake grid (SendAhead/8: replays wake on a common
	// grid, up to a step before their next packet is due, so that many
	// wake together; replay.go). Larger batches cost less CPU per packet
	// (fewer wake-ups and write calls): 80 ms costs about a
	// quarter less than 40 ms at 500 players (node BenchmarkNodeLive500,
	// rtspedge BenchmarkServe500Players), 160 ms another 8 % less than
	// 80 (rtspedge/README.md). It defaults to 160ms: four frames of a
	// 25 fps stream, a packet at most 180 ms early (players play by
	// timestamps and buffer what comes early: GStreamer's rtspsrc
	// buffers 2 s by default), in bursts of about 40 KB at 2 Mbit/s. It
	// applies to TCP players; UDP players get each packet when it is due
	// (replay.go). A live TCP play trails the live edge by SendAhead and a
	// grid step at least (180 ms by default), so that it batches too: one
	// that joins just after a key frame would otherwise get a write per
	// frame (liveTrail); its first batch, the key frame's stored packets,
	// leaves at once all the same. A play that a lagging source brought
	// up to the edge trails it again after a second (lagging).
	SendAhead time.Duration
	// Limits bound connections and sessions (connguard.go).
	Limits Limits
	// Auth, when set, requires players to authenticate (auth.go).
	Auth *PlayerAuth
}

const (
	defaultWriteQueueSize = 256
	defaultSendAhead      = 160 * time.Millisecond
)

// ServerStats counts what the server did since it started.
type ServerStats struct {
	Sessions    int    // sessions open now
	Playing     int    // sessions with a running replay
	PacketsSent uint64 // RTP packets handed to sessions
	BytesSent   uint64 // RTP bytes (header and payload) handed to sessions
	SlowDropped uint64 // players closed because they took nothing for 2 s (their connection, or their UDP queue)
	// UDPDropped counts RTP packets to UDP players dropped because the
	// player's queue was full (this process's writing behind: CPU or
	// link); the player sees a sequence gap, its session goes on.
	UDPDropped  uint64
	Oversized   uint64 // packets skipped because they exceed the RTP packet limit
	ReportsSent uint64 // RTCP compounds sent to players (sender reports, the end's SR+BYE)
	// RTCPReceived counts RTCP packets from players (receiver reports,
	// SDES, BYE): accepted, counted, never an error.
	RTCPReceived uint64
	// LiveRetrails counts live TCP plays moved back to trail the stored
	// edge after a lagging source brought them up to it (replay.go,
	// lagging).
	LiveRetrails uint64

	Conns           int    // RTSP connections open now
	ConnsRefused    uint64 // connections refused by MaxConns or MaxConnsPerAddr
	ConnsTimedOut   uint64 // connections closed for a request not complete in time, or idle outside PLAY
	SessionsRefused uint64 // SETUPs refused by MaxSessions or MaxSessionsPerAddr
	AuthChallenged  uint64 // 401s to requests without credentials
	AuthFailed      uint64 // 401s to requests with wrong credentials
}

// Server serves recordings to RTSP players: DESCRIBE answers the stored SDP,
// PLAY replays the stored packets at the origin's pacing, from any position,
// with the session's own continuous sequence numbers and timestamps.
type Server struct {
	cfg      ServerConfig
	log      *slog.Logger
	tcp      bool
	udp      bool
	ln       net.Listener
	guard    *connGuard
	auth     authStats
	udpConns []*net.UDPConn // pre-bound RTP and RTCP sockets
	rtsp     *gortsplib.Server

	ctx    context.Context // of Run, for Recordings.Open
	cancel context.CancelFunc

	mu      sync.Mutex
	conns   map[*gortsplib.ServerConn]*connState
	players map[*gortsplib.ServerSession]*player
	running bool
	// Sessions by address (MaxSessionsPerAddr) and the connection each
	// PLAY runs on (its read deadline is lifted meanwhile).
	sessionsPer     map[string]int
	sessionAddr     map[*gortsplib.ServerSession]string
	playConn        map[*gortsplib.ServerSession]*guardConn
	sessionsRefused atomic.Uint64

	replays      sync.WaitGroup
	grid         replayGrid // TCP replays' wake-ups (replaygrid.go)
	packetsSent  atomic.Uint64
	bytesSent    atomic.Uint64
	slowDropped  atomic.Uint64
	oversized    atomic.Uint64
	reportsSent  atomic.Uint64
	rtcpReceived atomic.Uint64
	liveRetrails atomic.Uint64
	udpDropped   atomic.Uint64
}

// NewServer validates cfg and binds the listeners (so Addr is known at
// once). Run serves and releases them.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Recordings == nil {
		return nil, errors.New("rtsp server: Recordings is required")
	}
	if cfg.Listen == "" {
		return nil, errors.New("rtsp server: Listen is required (e.g. \":8554\")")
	}
	if cfg.WriteQueueSize == 0 {
		cfg.WriteQueueSize = defaultWriteQueueSize
	}
	if cfg.WriteQueueSize < 0 || cfg.WriteQueueSize&(cfg.WriteQueueSize-1) != 0 {
		return nil, fmt.Errorf("rtsp server: WriteQueueSize %d must be a power of two", cfg.WriteQueueSize)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.SendAhead <= 0 {
		cfg.SendAhead = defaultSendAhead
	}
	if err := cfg.Limits.fill(); err != nil {
		return nil, err
	}
	if a := cfg.Auth; a != nil && (a.Realm == "" || a.HA1 == nil) {
		return nil, errors.New("rtsp server: Auth needs a Realm and HA1")
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		conns:       make(map[*gortsplib.ServerConn]*connState),
		players:     make(map[*gortsplib.ServerSession]*player),
		sessionsPer: make(map[string]int),
		sessionAddr: make(map[*gortsplib.ServerSession]string),
		playConn:    make(map[*gortsplib.ServerSession]*guardConn),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.guard = newConnGuard(cfg.Limits, s.log)
	hasUDPAddr := cfg.UDPRTPAddress != "" || cfg.UDPRTCPAddress != ""
	if len(cfg.Transports) == 0 {
		s.tcp, s.udp = true, hasUDPAddr
	}
	for _, t := range cfg.Transports {
		switch t {
		case TransportTCP:
			s.tcp = true
		case TransportUDP:
			s.udp = true
		default:
			return nil, fmt.Errorf("rtsp server: transport %q: want %q or %q", t, TransportTCP, TransportUDP)
		}
	}
	if s.udp && cfg.UDPRTPAddress == "" {
		return nil, errors.New("rtsp server: transport udp needs UDPRTPAddress and UDPRTCPAddress (e.g. \":8000\" and \":8001\")")
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("rtsp server: %w", err) // net says "listen tcp <addr>: …"
	}
	s.ln = guardListener{Listener: ln, g: s.guard}
	if s.udp {
		if err := s.bindUDP(); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	return s, nil
}

// Addr is the bound RTSP address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// UDPAddrs are the bound RTP and RTCP addresses, nil without UDP.
func (s *Server) UDPAddrs() (rtp, rtcp net.Addr) {
	if len(s.udpConns) != 2 {
		return nil, nil
	}
	return s.udpConns[0].LocalAddr(), s.udpConns[1].LocalAddr()
}

// bindUDP binds the RTP/RTCP pair, picking a free even/odd pair for port 0.
func (s *Server) bindUDP() error {
	host, port, err := net.SplitHostPort(s.cfg.UDPRTPAddress)
	if err != nil {
		return fmt.Errorf("rtsp server: UDPRTPAddress %q: %w", s.cfg.UDPRTPAddress, err)
	}
	if port == "0" {
		return s.bindUDPPair(host)
	}
	if s.cfg.UDPRTCPAddress == "" {
		return errors.New("rtsp server: UDPRTCPAddress is required with a fixed UDPRTPAddress")
	}
	for _, a := range []string{s.cfg.UDPRTPAddress, s.cfg.UDPRTCPAddress} {
		c, err := listenUDP(a)
		if err != nil {
			s.closeUDP()
			return fmt.Errorf("rtsp server: listen udp %s: %w", a, err)
		}
		s.udpConns = append(s.udpConns, c)
	}
	return nil
}

func (s *Server) bindUDPPair(host string) error {
	for range 100 {
		rtp, err := listenUDP(net.JoinHostPort(host, "0"))
		if err != nil {
			return fmt.Errorf("rtsp server: listen udp %s: %w", host, err)
		}
		p := rtp.LocalAddr().(*net.UDPAddr).Port
		if p%2 != 0 || p+1 > 65535 {
			_ = rtp.Close()
			continue
		}
		rtcp, err := listenUDP(net.JoinHostPort(host, strconv.Itoa(p+1)))
		if err != nil {
			_ = rtp.Close()
			continue
		}
		s.udpConns = []*net.UDPConn{rtp, rtcp}
		return nil
	}
	return fmt.Errorf("rtsp server: no free even/odd UDP port pair on %q", host)
}

func listenUDP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return net.ListenUDP("udp", a)
}

func (s *Server) closeUDP() {
	for _, c := range s.udpConns {
		_ = c.Close()
	}
}

// Run serves players until ctx ends, then closes every session and waits
// for every replay it started.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("rtsp server: Run called twice")
	}
	s.running = true
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.mu.Unlock()
	defer s.cancel()

	rs := &gortsplib.Server{
		Handler:        (*handler)(s),
		RTSPAddress:    s.ln.Addr().String(),
		ReadTimeout:    s.cfg.ReadTimeout,
		WriteTimeout:   s.cfg.WriteTimeout,
		WriteQueueSize: s.cfg.WriteQueueSize,
		// gortsplib's sender reports follow packets written to a
		// ServerStream; the replay writes to sessions and sends its own
		// (reports.go).
		DisableRTCPSenderReports: true,
		Listen: func(string, string) (net.Listener, error) {
			return s.ln, nil
		},
	}
	if s.udp {
		rtpAddr, rtcpAddr := s.UDPAddrs()
		rs.UDPRTPAddress, rs.UDPRTCPAddress = rtpAddr.String(), rtcpAddr.String()
		rs.ListenPacket = func(_, addr string) (net.PacketConn, error) {
			for _, c := range s.udpConns {
				if c.LocalAddr().String() == addr {
					return c, nil
				}
			}
			return nil, fmt.Errorf("no pre-bound UDP socket for %s", addr)
		}
	}
	s.mu.Lock()
	s.rtsp = rs // before Start: handlers run only after it
	s.mu.Unlock()
	if err := rs.Start(); err != nil {
		_ = s.ln.Close()
		s.closeUDP()
		return fmt.Errorf("rtsp server: %w", err)
	}
	s.log.Info("rtsp server listening", "addr", s.Addr().String(), "tcp", s.tcp, "udp", s.udp)

	waitErr := make(chan error, 1)
	go func() { waitErr <- rs.Wait() }()
	var err error
	select {
	case <-ctx.Done():
		rs.Close()
		<-waitErr
	case err = <-waitErr:
		err = fmt.Errorf("rtsp server: %w", err)
	}
	s.cancel()
	// Sessions close as gortsplib shuts down; close what may be left.
	s.mu.Lock()
	players := make([]*player, 0, len(s.players))
	for ss, p := range s.players {
		players = append(players, p)
		delete(s.players, ss)
	}
	conns := make([]*connState, 0, len(s.conns))
	for sc, cs := range s.conns {
		conns = append(conns, cs)
		delete(s.conns, sc)
	}
	s.mu.Unlock()
	for _, p := range players {
		p.close()
	}
	for _, cs := range conns {
		cs.close()
	}
	s.replays.Wait()
	return err
}

// Stats reports counters; it is safe to call at any time.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	st := ServerStats{Sessions: len(s.players)}
	for _, p := range s.players {
		if p.isPlaying() {
			st.Playing++
		}
	}
	s.mu.Unlock()
	st.PacketsSent = s.packetsSent.Load()
	st.BytesSent = s.bytesSent.Load()
	st.SlowDropped = s.slowDropped.Load()
	st.Oversized = s.oversized.Load()
	st.ReportsSent = s.reportsSent.Load()
	st.RTCPReceived = s.rtcpReceived.Load()
	st.LiveRetrails = s.liveRetrails.Load()
	st.UDPDropped = s.udpDropped.Load()
	st.Conns = s.guard.conns()
	st.ConnsRefused = s.guard.refused.Load()
	st.ConnsTimedOut = s.guard.timedOut.Load()
	st.SessionsRefused = s.sessionsRefused.Load()
	st.AuthChallenged = s.auth.challenged.Load()
	st.AuthFailed = s.auth.failed.Load()
	return st
}

func (s *Server) allows(t gortsplib.Transport) bool {
	switch t {
	case gortsplib.TransportTCP:
		return s.tcp
	case gortsplib.TransportUDP:
		return s.udp
	}
	return false
}

// recordingPath is the Recordings path of a request: no leading slash, the
// query kept.
func recordingPath(path, query string) string {
	if len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	if query != "" {
		return path + "?" + query
	}
	return path
}
