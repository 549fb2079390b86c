package rtspedge

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// Connection limits (issue 13).
//
// gortsplib clears a connection's read deadline before each request and
// applies ReadTimeout only to RECORD sessions, so a client that sends a
// request one byte at a time, or nothing at all, holds a connection and a
// goroutine forever. The server therefore wraps every accepted connection
// in a guardConn that keeps its own read deadline beside gortsplib's (the
// earlier of the two applies):
//
//   - A request must be complete RequestTimeout after its first byte; the
//     first request RequestTimeout after the connection opened.
//   - Between requests, a connection whose session is not playing is closed
//     after IdleTimeout without a request.
//   - While a PLAY runs on the connection there is no deadline of ours: a
//     player sends only RTCP reports and keep-alives then.
//
// The handler moves these states: OnRequest (a request is complete), OnPlay,
// OnPause and OnSessionClose. The listener refuses connections beyond
// MaxConns in all or MaxConnsPerAddr from one IP address with a 503 before
// anything is read; SETUP refuses sessions beyond MaxSessions and
// MaxSessionsPerAddr with 453 Not Enough Bandwidth.

// Limits bound what players may hold. Zero values take the defaults stated
// per field.
type Limits struct {
	RequestTimeout     time.Duration // a request completes within this of its first byte (default 10s)
	IdleTimeout        time.Duration // a connection outside PLAY without a request this long is closed (default 60s)
	MaxConns           int           // connections open at once (default 1000)
	MaxConnsPerAddr    int           // connections open at once from one IP address (default 100)
	MaxSessions        int           // player sessions open at once (default 1000)
	MaxSessionsPerAddr int           // player sessions open at once from one IP address (default 100)
}

// Default limits: a branch office with hundreds of players, a few of them
// behind one address (a NAT, a terminal server).
const (
	DefaultRequestTimeout     = 10 * time.Second
	DefaultIdleTimeout        = 60 * time.Second
	DefaultMaxConns           = 1000
	DefaultMaxConnsPerAddr    = 100
	DefaultMaxSessions        = 1000
	DefaultMaxSessionsPerAddr = 100
)

func (l *Limits) fill() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxConns, DefaultMaxConns)
	def(&l.MaxConnsPerAddr, DefaultMaxConnsPerAddr)
	def(&l.MaxSessions, DefaultMaxSessions)
	def(&l.MaxSessionsPerAddr, DefaultMaxSessionsPerAddr)
	if l.RequestTimeout == 0 {
		l.RequestTimeout = DefaultRequestTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxConns < 0 || l.MaxConnsPerAddr < 0 || l.MaxSessions < 0 || l.MaxSessionsPerAddr < 0 ||
		l.RequestTimeout < 0 || l.IdleTimeout < 0 {
		return errors.New("rtsp server: negative limit")
	}
	return nil
}

// connGuard counts connections and hands out guardConns.
type connGuard struct {
	lim Limits
	log *slog.Logger

	mu      sync.Mutex
	open    int
	perAddr map[string]int

	refused  atomic.Uint64 // connections refused by a cap
	timedOut atomic.Uint64 // connections closed by our deadlines
	lastLog  atomic.Int64  // unix nanos of the last "refused" log line
}

func newConnGuard(lim Limits, log *slog.Logger) *connGuard {
	return &connGuard{lim: lim, log: log, perAddr: make(map[string]int)}
}

// addrKey is the IP address of a remote address.
func addrKey(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// admit counts c, or refuses it over a cap.
func (g *connGuard) admit(c net.Conn) (*guardConn, bool) {
	key := addrKey(c.RemoteAddr())
	g.mu.Lock()
	over := ""
	switch {
	case g.open >= g.lim.MaxConns:
		over = "connections in all"
	case g.perAddr[key] >= g.lim.MaxConnsPerAddr:
		over = "connections from one address"
	}
	if over == "" {
		g.open++
		g.perAddr[key]++
	}
	g.mu.Unlock()
	if over != "" {
		g.refused.Add(1)
		g.logRefused("rtsp connection refused: too many "+over, "remote", key)
		return nil, false
	}
	gc := &guardConn{Conn: c, g: g, key: key}
	gc.mu.Lock()
	gc.ours = time.Now().Add(g.lim.RequestTimeout)
	gc.applyLocked()
	gc.mu.Unlock()
	return gc, true
}

// logRefused logs at most one refusal a minute, with the count so far.
func (g *connGuard) logRefused(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last < int64(time.Minute) || !g.lastLog.CompareAndSwap(last, now) {
		return
	}
	g.log.Warn(msg, append(args, "refused_total", g.refused.Load())...)
}

func (g *connGuard) release(key string) {
	g.mu.Lock()
	g.open--
	if g.perAddr[key]--; g.perAddr[key] <= 0 {
		delete(g.perAddr, key)
	}
	g.mu.Unlock()
}

// conns is the number of connections open.
func (g *connGuard) conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// guardConn is an accepted connection under our read deadline.
type guardConn struct {
	net.Conn
	g         *connGuard
	key       string
	closeOnce sync.Once

	mu      sync.Mutex
	theirs  time.Time // gortsplib's read deadline
	ours    time.Time // zero while playing
	inReq   bool      // bytes of a request arrived since the last complete one
	playing bool
}

// SyscallConn is the accepted connection's, for the replay's writes
// (batchConn.rawWrite).
func (c *guardConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection without a file descriptor")
	}
	return sc.SyscallConn()
}

// applyLocked sets the earlier of the two deadlines. c.mu is held.
func (c *guardConn) applyLocked() {
	d := c.theirs
	if !c.ours.IsZero() && (d.IsZero() || c.ours.Before(d)) {
		d = c.ours
	}
	_ = c.Conn.SetReadDeadline(d)
}

// SetReadDeadline records gortsplib's deadline.
func (c *guardConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.theirs = t
	c.applyLocked()
	return nil
}

// SetDeadline records gortsplib's read deadline and sets the write deadline.
func (c *guardConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

// Read starts the request timer at the first byte of a request.
func (c *guardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	// An interleaved frame ('$': RTCP of a TCP player) is not a request.
	if n > 0 && p[0] != '$' {
		c.mu.Lock()
		if !c.inReq && !c.playing {
			c.inReq = true
			c.ours = time.Now().Add(c.g.lim.RequestTimeout)
			c.applyLocked()
		}
		c.mu.Unlock()
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		c.g.timedOut.Add(1)
	}
	return n, err
}

// requestDone: a request is complete; the idle timer runs unless playing.
func (c *guardConn) requestDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inReq = false
	if !c.playing {
		c.ours = time.Now().Add(c.g.lim.IdleTimeout)
		c.applyLocked()
	}
}

// setPlaying lifts our deadline while a PLAY runs, and starts the idle
// timer when it stops.
func (c *guardConn) setPlaying(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.playing == on {
		return
	}
	c.playing, c.inReq = on, false
	c.ours = time.Time{}
	if !on {
		c.ours = time.Now().Add(c.g.lim.IdleTimeout)
	}
	c.applyLocked()
}

func (c *guardConn) Close() error {
	c.closeOnce.Do(func() { c.g.release(c.key) })
	return c.Conn.Close()
}

// guardListener admits connections through a connGuard and wraps them for
// write batching.
type guardListener struct {
	net.Listener
	g *connGuard
}

// capRefusal is what a connection over a cap reads before it is closed.
const capRefusal = "RTSP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"

func (l guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		gc, ok := l.g.admit(c)
		if !ok {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte(capRefusal))
			_ = c.Close()
			continue
		}
		return newBatchConn(gc), nil
	}
}

// guardOf returns the guardConn under a gortsplib connection's net.Conn.
func guardOf(nc net.Conn) *guardConn {
	if bc, ok := nc.(*batchConn); ok {
		nc = bc.Conn
	}
	gc, _ := nc.(*guardConn)
	return gc
}

// reserveSession counts a new session from addr, or refuses it over a cap.
func (s *Server) reserveSession(ss *gortsplib.ServerSession, addr string) bool {
	s.mu.Lock()
	full := len(s.sessionAddr) >= s.cfg.Limits.MaxSessions || s.sessionsPer[addr] >= s.cfg.Limits.MaxSessionsPerAddr
	if !full {
		s.sessionAddr[ss] = addr
		s.sessionsPer[addr]++
	}
	s.mu.Unlock()
	if full {
		s.sessionsRefused.Add(1)
		s.guard.logRefused("rtsp session refused: too many sessions", "remote", addr,
			"sessions_refused", s.sessionsRefused.Load())
	}
	return !full
}

// releaseSession uncounts a session (once; unknown sessions are ignored).
func (s *Server) releaseSession(ss *gortsplib.ServerSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr, ok := s.sessionAddr[ss]
	if !ok {
		return
	}
	delete(s.sessionAddr, ss)
	if s.sessionsPer[addr]--; s.sessionsPer[addr] <= 0 {
		delete(s.sessionsPer, addr)
	}
}

// stopPlaying restarts the idle timer of the connection a session played on.
func (s *Server) stopPlaying(ss *gortsplib.ServerSession) {
	s.mu.Lock()
	gc := s.playConn[ss]
	delete(s.playConn, ss)
	s.mu.Unlock()
	if gc != nil {
		gc.setPlaying(false)
	}
}
