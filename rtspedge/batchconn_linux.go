package rtspedge

import (
	"io"
	"syscall"
	"unsafe"
)

// rawWrites: the replay writes its batches with write(2) as a raw system
// call (batchConn.rawWrite).
const rawWrites = true

// writeRaw writes what is left of c.rawBuf to fd; false when the socket is
// full (RawConn.Write waits until it is writable, or the deadline).
func (c *batchConn) writeRaw(fd uintptr) bool {
	p := c.rawBuf
	for c.rawN < len(p) {
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[c.rawN])), uintptr(len(p)-c.rawN))
		switch {
		case e == syscall.EAGAIN:
			return false
		case e == syscall.EINTR:
			continue
		case e != 0:
			c.rawErr = e
			return true
		case m == 0:
			c.rawErr = io.ErrShortWrite
			return true
		}
		c.rawN += int(m)
	}
	return true
}
