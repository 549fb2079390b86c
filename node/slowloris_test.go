package node_test

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/store"
)

// slowConn is one attacking connection and what became of it.
type slowConn struct {
	c       net.Conn
	opened  time.Time
	done    atomic.Bool // the server closed it
	refused bool        // it read the 503 of a cap
	life    time.Duration
}

// TestSlowlorisClosedWhilePlayerPlays: 200 connections from one address
// that send a request one byte every 500 ms (for at most 10 s) are refused
// beyond rtsp.max_connections_per_address or closed by rtsp.request_timeout;
// the server's goroutines come back to what they were; a player that was
// playing meanwhile gets every frame (issue 13).
func TestSlowlorisClosedWhilePlayerPlays(t *testing.T) {
	org := startOrigin(t, nil)
	cfg := nodeConfig(t, org)
	cfg.Mesh.Enabled = false
	cfg.Admin.Listen = "127.0.0.1:0"
	const requestTimeout = 2 * time.Second
	cfg.RTSP.RequestTimeout = node.Duration(requestTimeout)
	cfg.RTSP.IdleTimeout = node.Duration(requestTimeout)
	cfg.RTSP.MaxConnectionsPerAddress = 100
	n := startNode(t, cfg)
	api := "http://" + n.AdminAddr().String()

	// The recording is stored first (its fill, playing the reference): the
	// player under attack reads the store, as an office's players mostly
	// do, and no origin timing on a loaded machine is part of the test.
	ref := frameMD5(t, n.url("o/sample.ts"), "tcp")
	testkit.Eventually(t, 30*time.Second, "the recording complete", func() bool {
		in, err := n.Stream("o/sample.ts")
		return err == nil && in.State == store.StateComplete
	})

	var wg sync.WaitGroup
	defer wg.Wait()
	played := make(chan decoded, 1)
	wg.Go(func() { played <- decode(n.url("o/sample.ts"), "tcp") })
	testkit.Eventually(t, 30*time.Second, "the player to play", func() bool {
		return metricValue(t, api, "", "rtspmesh_players_playing") == 1
	})
	// The baseline: once the player runs, the count settles.
	baseline, same := 0, 0
	testkit.Eventually(t, 30*time.Second, "the goroutine count to settle", func() bool {
		n := runtime.NumGoroutine()
		if n == baseline {
			same++
		} else {
			baseline, same = n, 0
		}
		return same >= 50 // 500 ms unchanged
	})
	var before bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&before, 1)

	const attackers, every, window = 200, 500 * time.Millisecond, 10 * time.Second
	request := []byte("OPTIONS rtsp://" + n.RTSPAddr().String() + "/o/sample.ts RTSP/1.0\r\nCSeq: 1\r\n\r\n")
	conns := make([]*slowConn, 0, attackers)
	var readers sync.WaitGroup
	start := time.Now()
	for range attackers {
		c, err := net.Dial("tcp", n.RTSPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc := &slowConn{c: c, opened: time.Now()}
		conns = append(conns, sc)
		readers.Go(func() {
			got, _ := io.ReadAll(c)
			sc.refused = bytes.HasPrefix(got, []byte("RTSP/1.0 503"))
			sc.life = time.Since(sc.opened)
			sc.done.Store(true)
		})
	}
	var peakServer float64
	tick := time.NewTicker(every)
	for i := 0; time.Since(start) < window; i++ {
		open := 0
		for _, sc := range conns {
			if !sc.done.Load() && i < len(request) {
				_, _ = sc.c.Write(request[i : i+1])
				open++
			}
		}
		peakServer = max(peakServer, metricValue(t, api, "", "rtspmesh_rtsp_connections"))
		if open == 0 {
			break
		}
		<-tick.C
	}
	tick.Stop()
	attack := time.Since(start)
	for _, sc := range conns {
		sc.c.Close()
	}
	readers.Wait()

	var refused, timedOut, stillOpen int
	var longest time.Duration
	for _, sc := range conns {
		switch {
		case sc.refused:
			refused++
		case sc.life < window:
			timedOut++
			longest = max(longest, sc.life)
		default:
			stillOpen++
		}
	}
	t.Logf("slowloris: %d connections; %d refused at once (503), %d closed by the request timeout (the last after %s), %d held to the end; server peak %v connections; attack over after %s",
		attackers, refused, timedOut, longest.Round(time.Millisecond), stillOpen, peakServer, attack.Round(time.Millisecond))
	if stillOpen > 0 {
		t.Errorf("%d slowloris connections held for the whole %s", stillOpen, window)
	}
	if refused < attackers-cfg.RTSP.MaxConnectionsPerAddress {
		t.Errorf("%d refused, want at least %d beyond the per-address cap", refused, attackers-cfg.RTSP.MaxConnectionsPerAddress)
	}
	if longest > requestTimeout+3*time.Second {
		t.Errorf("a slowloris connection lived %s, request timeout %s", longest, requestTimeout)
	}
	if v := metricValue(t, api, "", "rtspmesh_rtsp_connections_timed_out_total"); v < float64(timedOut) {
		t.Errorf("rtspmesh_rtsp_connections_timed_out_total %v, want at least %d", v, timedOut)
	}
	if v := metricValue(t, api, "", "rtspmesh_rtsp_connections_refused_total"); v != float64(refused) {
		t.Errorf("rtspmesh_rtsp_connections_refused_total %v, want %d", v, refused)
	}
	var now int
	if !testkit.Until(15*time.Second, func() bool { now = runtime.NumGoroutine(); return now <= baseline+5 }) {
		var after bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&after, 1)
		t.Fatalf("goroutines: %d before the attack, %d 15s after it\nbefore:\n%s\nafter:\n%s", baseline, now, before.String(), after.String())
	}
	t.Logf("goroutines: %d before the attack, %d after", baseline, now)
	got := (<-played).frames(t)
	// A short decode on a loaded machine: was the player dropped as too
	// slow (queue full), or by the connection guard?
	t.Logf("the player decoded %d frames; players dropped as too slow: %v; connections timed out: %v (attackers: %d)",
		len(got), metricValue(t, api, "", "rtspmesh_slow_players_dropped_total"),
		metricValue(t, api, "", "rtspmesh_rtsp_connections_timed_out_total"), timedOut)
	sameFrames(t, "the player during the attack", got, ref)
}
