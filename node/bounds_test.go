package node

import (
	"errors"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/rtspedge"
)

// TestRequestRates: a connection gets a burst of twice its rate, then its
// rate; an address the same over all its connections; idle buckets are
// forgotten and come back full.
func TestRequestRates(t *testing.T) {
	t.Parallel()
	r := newRequestRates(FillsConfig{DescribesPerConnection: 2, DescribesPerAddress: 3})
	now := time.Unix(1000, 0)
	a1 := rtspedge.Client{Addr: "10.0.0.1", Conn: 1}
	var le *rtspedge.LimitError
	for i := range 4 {
		if err := r.allow(a1, now); err != nil {
			t.Fatalf("request %d of the burst: %v", i, err)
		}
	}
	if err := r.allow(a1, now); !errors.As(err, &le) || le.Limit != "requests_per_connection" {
		t.Fatalf("5th request at once: %v, want the connection's bound", err)
	}
	// Another connection of the same address: the address has 2 of its 6 left.
	a2 := rtspedge.Client{Addr: "10.0.0.1", Conn: 2}
	for i := range 2 {
		if err := r.allow(a2, now); err != nil {
			t.Fatalf("second connection, request %d: %v", i, err)
		}
	}
	if err := r.allow(a2, now); !errors.As(err, &le) || le.Limit != "requests_per_address" {
		t.Fatalf("7th request of the address: %v, want the address's bound", err)
	}
	r.mu.Lock()
	left := r.conns[2].lim.TokensAt(now)
	r.mu.Unlock()
	if left != 2 {
		t.Fatalf("a refused request took the connection's token: %v left, want 2", left)
	}
	// Another address is not held by the first.
	if err := r.allow(rtspedge.Client{Addr: "10.0.0.2", Conn: 3}, now); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// Half a second later the connection has one token again (2/s).
	if err := r.allow(a1, now.Add(500*time.Millisecond)); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	// Idle buckets are swept, and a swept one is full again.
	later := now.Add(limiterIdleForget + 2*time.Second)
	if err := r.allow(rtspedge.Client{Addr: "10.0.0.9", Conn: 9}, later); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	conns, addrs := len(r.conns), len(r.addrs)
	r.mu.Unlock()
	if conns != 1 || addrs != 1 {
		t.Fatalf("after the sweep: %d connection and %d address buckets, want 1 and 1", conns, addrs)
	}
	for i := range 4 {
		if err := r.allow(a1, later); err != nil {
			t.Fatalf("swept connection, request %d: %v", i, err)
		}
	}
}
