package rtspedge

import (
	"net"
	"sync"
	"syscall"
	"time"
)

const (
	// batchMaxBytes: the replay writes a batch of interleaved frames in
	// writes of at most this much. A steady 2 Mbit/s batch (80 ms) is about
	// 20 KiB; a join's burst (a GOP at once) takes a few writes.
	batchMaxBytes = 64 << 10
	// slowWrite: a player whose connection takes no byte of a batch for this
	// long, and at most half as long again (its socket buffers, megabytes
	// on a fast link, already full), is too slow, and its session is
	// closed. The replay's write deadline is moved on only when less than
	// slowWrite is left of it: setting a deadline is a runtime timer's
	// update, once a second instead of at every batch.
	slowWrite = 2 * time.Second
)

// batchBufs holds the buffers batches are gathered in: a replay takes one
// for a batch and gives it back once the batch is written, so memory follows
// the batches being written, not the players.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchMaxBytes); return &b }}

// batchConn is a player's RTSP connection. The replay of a TCP session
// writes its RTP and RTCP as interleaved frames straight to it (writeBatch),
// a batch at a time, instead of one gortsplib write per packet through the
// session's queue and writer goroutine; gortsplib writes its RTSP responses
// (and any frames of its own) through Write. mu keeps each write whole and
// its deadline its own.
type batchConn struct {
	net.Conn

	mu       sync.Mutex
	deadline time.Time  // gortsplib's write deadline, for its next Write
	set      time.Time  // the write deadline the connection has now
	err      error      // sticky: a failed write fails everything after it
	held     bool       // the replay waits for gortsplib's next Write (a PLAY answer)
	released *sync.Cond // on mu: held was cleared
	// raw is the socket's, for the replay's writes (rawWrite); nil when
	// the connection has none (a test's pipe). rawFn is writeRaw, made
	// once (a method value is an allocation), and rawBuf, rawN, rawErr its
	// write, under mu.
	raw    syscall.RawConn
	rawFn  func(fd uintptr) bool
	rawBuf []byte
	rawN   int
	rawErr error
}

func newBatchConn(c net.Conn) *batchConn {
	bc := &batchConn{Conn: c}
	bc.released = sync.NewCond(&bc.mu)
	if sc, ok := c.(syscall.Conn); ok && rawWrites {
		bc.raw, _ = sc.SyscallConn()
		bc.rawFn = bc.writeRaw
	}
	return bc
}

// holdForAnswer makes the replay's writes wait for gortsplib's next Write:
// the answer to the PLAY being handled, which a player must get before the
// stream's first packet (FFmpeg drops what comes before it).
func (c *batchConn) holdForAnswer() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// SetWriteDeadline is applied to gortsplib's next Write.
func (c *batchConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

// SetDeadline sets the read deadline now and the write deadline for
// gortsplib's next Write.
func (c *batchConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

// Write is gortsplib's: an RTSP response, or a frame it writes itself.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held {
		c.held = false
		c.released.Broadcast()
	}
	return c.writeLocked(p, c.deadline, false)
}

// writeBatch writes interleaved frames of the replay, after the PLAY answer
// (holdForAnswer); a connection that does not take them within slowWrite
// (and at most half as long again) fails with os.ErrDeadlineExceeded.
func (c *batchConn) writeBatch(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.awaitAnswerLocked()
	deadline := c.set
	if now := time.Now(); deadline.Before(now.Add(slowWrite)) || deadline.After(now.Add(slowWrite*3/2)) {
		deadline = now.Add(slowWrite * 3 / 2)
	}
	_, err := c.writeLocked(p, deadline, c.raw != nil)
	return err
}

// awaitAnswer returns once gortsplib has written the PLAY answer
// (holdForAnswer), for a UDP play's replay, whose packets leave through
// gortsplib's session queue, not this connection.
func (c *batchConn) awaitAnswer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.awaitAnswerLocked()
}

// awaitAnswerLocked waits, with c.mu held, until held is cleared.
// gortsplib answers as soon as the PLAY handler returns; the wait is
// bounded all the same by slowWrite (an answer never written: a TCP
// replay's write then fails on the connection).
func (c *batchConn) awaitAnswerLocked() {
	if !c.held {
		return
	}
	t := time.AfterFunc(slowWrite, func() {
		c.mu.Lock()
		c.held = false
		c.released.Broadcast()
		c.mu.Unlock()
	})
	for c.held {
		c.released.Wait()
	}
	t.Stop()
}

// writeLocked writes p by the connection's Write, or by rawWrite.
func (c *batchConn) writeLocked(p []byte, deadline time.Time, raw bool) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if !deadline.Equal(c.set) {
		if err := c.Conn.SetWriteDeadline(deadline); err != nil {
			c.err = err
			return 0, err
		}
		c.set = deadline
	}
	var n int
	var err error
	if raw {
		n, err = c.rawWrite(p)
	} else {
		n, err = c.Conn.Write(p)
	}
	if err != nil {
		c.err = err
		_ = c.Conn.Close() // a frame cut short breaks the interleaved stream
	}
	return n, err
}

// rawWrite writes p to the socket with write(2) made as a raw system call,
// one the Go runtime does not hand its processor off around: the socket is
// non-blocking (the runtime's poller waits, up to the write deadline, when
// it is full), so the call never blocks, but a batch's write to loopback
// TCP (the receiving side runs in it) takes tens of µs, and through the
// runtime's syscall path its monitor thread took the processor away from
// most of them to run other replays, then put the thread to sleep when the
// write returned: the monitor polling every 20 µs and the threads' hand-
// offs were a tenth of a server's CPU with 500 players.
func (c *batchConn) rawWrite(p []byte) (int, error) {
	c.rawBuf, c.rawN, c.rawErr = p, 0, nil
	err := c.raw.Write(c.rawFn)
	if err == nil {
		err = c.rawErr
	}
	n := c.rawN
	c.rawBuf, c.rawErr = nil, nil
	return n, err
}
