package node

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/rtspmesh/rtspmesh/node/fill"
	"github.com/rtspmesh/rtspmesh/rtspedge"
)

// Bounds on what players can make the node do (fills.* in the config):
// the "limit" label of rtspmesh_refused_total and the reason phrase of the
// 503 a player gets.
// The fill bounds are the fill registry's (fill.ErrTooManyFills...).
var (
	limitRatePerConn = &rtspedge.LimitError{Limit: "requests_per_connection", Reason: "too many requests on this connection"}
	limitRatePerAddr = &rtspedge.LimitError{Limit: "requests_per_address", Reason: "too many requests from this address"}
	limitLabels      = []string{fill.ErrTooManyFills.Limit, fill.ErrTooManyFillsForClient.Limit, limitRatePerConn.Limit, limitRatePerAddr.Limit}
)

const (
	limiterIdleForget  = 10 * time.Second // a limiter idle this long is full again: forget it
	limiterSweepPeriod = time.Second
)

// requestRates holds a token bucket per RTSP connection and per client
// address: each allows describes_per_* streams asked for per second, in
// bursts of twice that.
type requestRates struct {
	perConn, perAddr rate.Limit
	burstConn        int
	burstAddr        int

	mu        sync.Mutex
	conns     map[uint64]*bucket
	addrs     map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

func newRequestRates(c FillsConfig) *requestRates {
	return &requestRates{
		perConn: rate.Limit(c.DescribesPerConnection), burstConn: 2 * c.DescribesPerConnection,
		perAddr: rate.Limit(c.DescribesPerAddress), burstAddr: 2 * c.DescribesPerAddress,
		conns: make(map[uint64]*bucket), addrs: make(map[string]*bucket),
	}
}

// allow takes a token for the client's connection and address, or says
// which bound refused it (no token is taken then).
func (r *requestRates) allow(c rtspedge.Client, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweepLocked(now)
	var conn, addr *bucket
	if c.Conn != 0 {
		conn = take(r.conns, c.Conn, r.perConn, r.burstConn, now)
		if conn.lim.TokensAt(now) < 1 {
			return limitRatePerConn
		}
	}
	if c.Addr != "" {
		addr = take(r.addrs, c.Addr, r.perAddr, r.burstAddr, now)
		if addr.lim.TokensAt(now) < 1 {
			return limitRatePerAddr
		}
	}
	// Both have a token (r.mu keeps it so): take them.
	if conn != nil {
		conn.lim.AllowN(now, 1)
	}
	if addr != nil {
		addr.lim.AllowN(now, 1)
	}
	return nil
}

func take[K comparable](m map[K]*bucket, k K, l rate.Limit, burst int, now time.Time) *bucket {
	b := m[k]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l, burst)}
		m[k] = b
	}
	b.used = now
	return b
}

// sweepLocked forgets buckets unused for limiterIdleForget: they have
// refilled, so a new one is the same (connections that closed never come
// back: their ids are not reused).
func (r *requestRates) sweepLocked(now time.Time) {
	if now.Sub(r.lastSweep) < limiterSweepPeriod {
		return
	}
	r.lastSweep = now
	for k, b := range r.conns {
		if now.Sub(b.used) > limiterIdleForget {
			delete(r.conns, k)
		}
	}
	for k, b := range r.addrs {
		if now.Sub(b.used) > limiterIdleForget {
			delete(r.addrs, k)
		}
	}
}

// newRefusals is rtspmesh_refused_total, registered in reg.
func newRefusals(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtspmesh_refused_total",
		Help: "Player requests and prefetches refused by a bound (fills.*), by limit.",
	}, []string{"limit"})
	for _, l := range limitLabels {
		c.WithLabelValues(l)
	}
	reg.MustRegister(c)
	return c
}

// refused counts err when a bound refused the request; it reports whether one did.
func (m *metrics) refused(err error) bool {
	var le *rtspedge.LimitError
	if !errors.As(err, &le) {
		return false
	}
	if m != nil {
		m.refusals.WithLabelValues(le.Limit).Inc()
	}
	return true
}
