package rtspedge

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

// closedWithin waits for the server to close c and says how long it took;
// it fails the test after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", limit)
	}
	return time.Since(start)
}

// TestConnectionTimeouts: a connection that sends nothing, or half a
// request, is closed RequestTimeout after it opened or the request began;
// one that sits idle after a request is closed after IdleTimeout; a playing
// one is never closed for being quiet (issue 13).
func TestConnectionTimeouts(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	synthRecording(t, st, "v", synthSpec{dur: 10 * time.Second, fps: 25, perFrame: 2, size: 300, gop: 25})
	lim := Limits{RequestTimeout: 500 * time.Millisecond, IdleTimeout: time.Second}
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st), Limits: lim})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// The player plays (TCP) through several idle timeouts.
	p := newTestPlayer(t, serverURL(s, "v"), gortsplib.TransportTCP)
	p.play(t, nil)

	silent := dial()
	half := dial()
	if _, err := half.Write([]byte("OPTIONS rtsp://x/ RTSP/1.0\r\nCSe")); err != nil {
		t.Fatal(err)
	}
	idle := dial()
	if _, err := idle.Write([]byte("OPTIONS " + serverURL(s, "v") + " RTSP/1.0\r\nCSeq: 1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	var res base.Response
	if err := res.Unmarshal(br); err != nil || res.StatusCode != base.StatusOK {
		t.Fatalf("OPTIONS: %v %v", res.StatusCode, err)
	}
	idleAt := time.Now()

	for name, c := range map[string]net.Conn{"silent": silent, "half a request": half} {
		if d := closedWithin(t, c, 10*time.Second); d > 5*time.Second {
			t.Errorf("%s connection closed after %s, want about %s", name, d, lim.RequestTimeout)
		}
	}
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("idle connection: %v (want closed by the server)", err)
	}
	if d := time.Since(idleAt); d < lim.IdleTimeout-100*time.Millisecond {
		t.Errorf("idle connection closed after %s, before the idle timeout %s", d, lim.IdleTimeout)
	}
	if st := s.Stats(); st.ConnsTimedOut < 3 {
		t.Errorf("timed out connections %d, want at least 3", st.ConnsTimedOut)
	}

	// The player is still served well past the timeouts.
	n := len(p.received())
	p.waitPackets(t, n+50, 5*time.Second)
	if st := s.Stats(); st.Conns != 1 || st.Playing != 1 {
		t.Fatalf("after the timeouts: %d connections, %d playing; want the player's only", st.Conns, st.Playing)
	}
}

// TestConnectionAndSessionCaps: connections beyond the per-address cap get
// a 503 and are closed before anything is read; sessions beyond theirs get
// 453; both free up when a holder goes.
func TestConnectionAndSessionCaps(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	synthRecording(t, st, "v", synthSpec{dur: 10 * time.Second, fps: 25, perFrame: 2, size: 300, gop: 25})
	s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st),
		Limits: Limits{MaxConnsPerAddr: 4, MaxSessionsPerAddr: 2}})

	var held []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		held = append(held, c)
	}
	testkit.Eventually(t, 5*time.Second, "4 connections", func() bool { return s.Stats().Conns == 4 })
	extra, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(extra)
	if !strings.HasPrefix(string(got), "RTSP/1.0 503") {
		t.Fatalf("5th connection from one address read %q, want a 503", got)
	}
	if st := s.Stats(); st.ConnsRefused != 1 {
		t.Fatalf("refused connections %d, want 1", st.ConnsRefused)
	}
	for _, c := range held {
		c.Close()
	}
	testkit.Eventually(t, 5*time.Second, "the held connections to go", func() bool { return s.Stats().Conns == 0 })

	p1 := newTestPlayer(t, serverURL(s, "v"), gortsplib.TransportTCP)
	newTestPlayer(t, serverURL(s, "v"), gortsplib.TransportTCP)
	c, u, err := interop.Dial(serverURL(s, "v"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Setup(desc.BaseURL, desc.Medias[0], 0, 0)
	var bad liberrors.ErrClientBadStatusCode
	if !errors.As(err, &bad) || bad.Code != base.StatusNotEnoughBandwidth {
		t.Fatalf("3rd session from one address: %v, want 453", err)
	}
	if st := s.Stats(); st.SessionsRefused != 1 {
		t.Fatalf("refused sessions %d, want 1", st.SessionsRefused)
	}
	p1.c.Close()
	testkit.Eventually(t, 5*time.Second, "a session slot", func() bool {
		_, err := c.Setup(desc.BaseURL, desc.Medias[0], 0, 0)
		return err == nil
	})
}
