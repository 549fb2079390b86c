package node

import (
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Fill speed and WAN etiquette (docs/operations.md, "Fill speed and
// rate_limit"): how fast a fill asks an origin to deliver
// (origins[].speed), how many ranges a fill nobody watches pulls at once,
// each at the granted speed (origins[].range_parallelism), and the
// bandwidth caps fills are held to, per origin (origins[].rate_limit,
// shared by every fill from it) and per peer (mesh.rate_limit, one cap for
// each neighbour).

// DefaultSpeed is origins[].speed when the key is left out.
const DefaultSpeed = 8

// DefaultRangeParallelism is origins[].range_parallelism when the key is
// left out. Each range arrives at the speed the origin granted (real time
// when none), so n ranges fill at most n times faster than one session;
// with the first session's set-up (and, for an origin that slows its
// clock with Speed, the dropped first session) 4 measured 3.73x and 5
// measured 4.70x for a 90 s recording from gst-rtsp-server, and 5 at
// Speed 8 from the built-in origin 34.5x (BenchmarkPrefetch90s): 5 is the
// default that meets issue 15's 4x.
const DefaultRangeParallelism = 5

// maxRangeParallelism bounds origins[].range_parallelism.
const maxRangeParallelism = 16

// rangeParallelism is the most sessions a fill of o that nobody watches
// pulls at once (rtspedge.PullRanges).
func (o Origin) rangeParallelism() int {
	if o.RangeParallelism == nil {
		return DefaultRangeParallelism
	}
	return *o.RangeParallelism
}

// maxSpeed bounds origins[].speed: beyond it a fill would only make the
// origin's burst longer than any player needs.
const maxSpeed = 64

// speed is the most o's fills ask the origin to hurry (RTSP Speed).
func (o Origin) speed() float64 {
	if o.Speed == nil {
		return DefaultSpeed
	}
	return *o.Speed
}

func validateSpeed(bad complain, key string, o Origin) {
	if o.Speed != nil && (*o.Speed < 1 || *o.Speed > maxSpeed) {
		bad(key+".speed", "%v is out of range; write a number from 1 (ask for no Speed) to %d, or leave it out for %d", *o.Speed, maxSpeed, DefaultSpeed)
	}
	if p := o.RangeParallelism; p != nil && (*p < 1 || *p > maxRangeParallelism) {
		bad(key+".range_parallelism", "%d is out of range; write a number from 1 (one session) to %d, or leave it out for %d", *p, maxRangeParallelism, DefaultRangeParallelism)
	}
	if o.RateLimit < 0 {
		bad(key+".rate_limit", "%s is negative; write e.g. \"20Mbit/s\", or 0 (the default) for no cap", o.RateLimit)
	}
}

// throttles are the bandwidth caps of fills: one per origin that sets
// rate_limit, made by New, and one per peer when mesh.rate_limit is set,
// made when the peer is first filled from.
type throttles struct {
	origins map[string]*rate.Limiter // by origin name

	peerRate Bitrate
	mu       sync.Mutex
	peers    map[string]*rate.Limiter // by peer id
}

func newThrottles(cfg Config) *throttles {
	t := &throttles{origins: map[string]*rate.Limiter{}, peerRate: cfg.Mesh.RateLimit, peers: map[string]*rate.Limiter{}}
	for _, o := range cfg.Origins {
		if o.RateLimit > 0 {
			t.origins[o.Name] = newLimiter(o.RateLimit)
		}
	}
	return t
}

// newLimiter is a limiter of r in bytes, with a burst of 100 ms of it (at
// least a full-size packet), so a read waits little and a closed
// connection is let go soon.
func newLimiter(r Bitrate) *rate.Limiter {
	perSec := float64(r) / 8
	return rate.NewLimiter(rate.Limit(perSec), max(int(perSec/10), 4096))
}

// origin wraps a connection to origin o in its cap, if it has one.
func (t *throttles) origin(o *Origin) func(net.Conn) net.Conn {
	if o == nil || t.origins[o.Name] == nil {
		return nil
	}
	l := t.origins[o.Name]
	return func(c net.Conn) net.Conn { return &throttledConn{Conn: c, r: throttledReader{r: c, l: l}} }
}

// peer wraps what a fill reads from peer in the peer's cap, if any
// (mesh.Config.WrapFill).
func (t *throttles) peer(peer string, r io.Reader) io.Reader {
	if t.peerRate <= 0 {
		return r
	}
	t.mu.Lock()
	l := t.peers[peer]
	if l == nil {
		l = newLimiter(t.peerRate)
		t.peers[peer] = l
	}
	t.mu.Unlock()
	return &throttledReader{r: r, l: l}
}

// throttledReader reads from r no faster than l allows: each read is at
// most l's burst, and returns once l has the tokens for what it read.
type throttledReader struct {
	r io.Reader
	l *rate.Limiter
}

func (t *throttledReader) Read(p []byte) (int, error) {
	if b := t.l.Burst(); len(p) > b {
		p = p[:b]
	}
	n, err := t.r.Read(p)
	if n > 0 {
		// Reserve rather than Wait: no context to pass, and the wait is
		// at most a burst's worth (100 ms) per reader sharing l.
		time.Sleep(t.l.ReserveN(time.Now(), n).Delay())
	}
	return n, err
}

// throttledConn is a connection whose reads are throttled.
type throttledConn struct {
	net.Conn
	r throttledReader
}

func (c *throttledConn) Read(p []byte) (int, error) { return c.r.Read(p) }
