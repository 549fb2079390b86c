package rtspedge

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// batchMaxBytes: a batch larger than this goes out in several writes.
	// A steady 2 Mbit/s batch (40 ms) is about 10 KiB; a join's burst (a
	// GOP at once) takes a few writes. Measured: 256 KiB buffers kept per
	// connection were 81 MiB of a node's heap at 500 players.
	batchMaxBytes = 64 << 10
	// batchLinger bounds how long a frame may wait in the buffer if the
	// expected count is never reached (a push that failed, a PAUSE that
	// discarded queued frames).
	batchLinger = 20 * time.Millisecond
)

// batchConn coalesces the interleaved frames of one replayer batch into one
// write() system call. gortsplib writes each RTP packet of a session with
// its own Write; the replayer says beforehand how many frames its batch has
// (expect), and the frames are buffered until the last of them arrives.
// Anything that is not an interleaved frame (an RTSP response) flushes at
// once, in order. Writes from gortsplib's session writer and its connection
// goroutine may be concurrent; mu orders them.
type batchConn struct {
	net.Conn

	target atomic.Uint64 // flush when frames reaches this

	mu       sync.Mutex
	written  *sync.Cond // on mu: signalled when frames grows
	frames   uint64     // interleaved frames accepted by Write
	buf      []byte
	deadline time.Time
	timer    *time.Timer
	err      error // sticky error of a deferred flush
}

// batchBufs holds the buffers of batches being gathered: a connection takes
// one at its batch's first frame and gives it back once the batch is
// written, so memory follows the batches in flight, not the connections.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchMaxBytes); return &b }}

func newBatchConn(c net.Conn) *batchConn {
	bc := &batchConn{Conn: c}
	bc.written = sync.NewCond(&bc.mu)
	return bc
}

// drain waits until n frames were accepted (and so written: the n-th
// flushes when n was announced) or d passed; false on timeout or error.
func (c *batchConn) drain(n uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	t := time.AfterFunc(d, func() {
		c.mu.Lock()
		c.written.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.frames < n && c.err == nil && time.Now().Before(deadline) {
		c.written.Wait()
	}
	return c.frames >= n && c.err == nil
}

// expect announces that the next n frames (after the frames already
// announced, counted by the caller as total) belong to one batch: they are
// written together once the last one arrives.
func (c *batchConn) expect(total uint64) { c.target.Store(total) }

// framesWritten is how many frames Write accepted so far.
func (c *batchConn) framesWritten() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// SetWriteDeadline is applied to the next real write.
func (c *batchConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

// SetDeadline sets the read deadline now and the write deadline for the next
// real write.
func (c *batchConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	frame := len(p) > 0 && p[0] == '$'
	if frame {
		c.frames++
		c.written.Broadcast()
		if c.frames < c.target.Load() && len(c.buf)+len(p) <= batchMaxBytes {
			if len(c.buf) == 0 {
				if c.buf == nil {
					c.buf = (*batchBufs.Get().(*[]byte))[:0]
				}
				c.armLocked()
			}
			c.buf = append(c.buf, p...)
			return len(p), nil
		}
	}
	if len(c.buf) == 0 {
		return c.writeLocked(p)
	}
	c.buf = append(c.buf, p...)
	if _, err := c.flushLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// armLocked starts the linger timer for a buffer that just became non-empty.
func (c *batchConn) armLocked() {
	if c.timer == nil {
		c.timer = time.AfterFunc(batchLinger, c.lingerFlush)
		return
	}
	c.timer.Reset(batchLinger)
}

func (c *batchConn) lingerFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) > 0 && c.err == nil {
		_, _ = c.flushLocked()
	}
}

func (c *batchConn) flushLocked() (int, error) {
	n, err := c.writeLocked(c.buf)
	if cap(c.buf) <= 2*batchMaxBytes { // an RTSP response may have grown it
		buf := c.buf[:0]
		batchBufs.Put(&buf)
	}
	c.buf = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	return n, err
}

func (c *batchConn) writeLocked(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(c.deadline); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
		_ = c.Conn.Close() // a failed deferred write must fail everything after it
	}
	return n, err
}

// Close closes the connection first: that unblocks a Write stuck on a full
// socket, which holds mu.
func (c *batchConn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	return err
}
