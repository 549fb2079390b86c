//go:build linux

package store

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readCached reads len(buf) bytes at off of f (raw: f's, or nil) as
// f.ReadAt does, but first with one preadv2(RWF_NOWAIT) made as a raw
// system call: it copies what the page cache holds and never waits for
// the disk (it stops at the first page not cached), so the Go runtime need
// not hand its processor off around it; what is left (pages not cached, a
// kernel or file system without RWF_NOWAIT) is read with ReadAt. A chunk
// read of a player spread over a long recording is a 16 KiB pread from the
// page cache, a few µs: through the runtime's syscall path its monitor
// took the processor from many of them, polled every 20 µs and handed
// threads off (about 5 % of a server's CPU with 500 spread players).
func readCached(f *os.File, raw syscall.RawConn, buf []byte, off int64) (int, error) {
	n := 0
	if raw != nil && len(buf) > 0 && !noWaitUnsupported.Load() {
		_ = raw.Control(func(fd uintptr) {
			iov := syscall.Iovec{Base: &buf[0]}
			iov.SetLen(len(buf))
			r, _, e := syscall.RawSyscall6(unix.SYS_PREADV2, fd, uintptr(unsafe.Pointer(&iov)), 1, uintptr(off), 0, unix.RWF_NOWAIT)
			switch {
			case e == 0:
				n = int(r)
			case errors.Is(e, unix.EOPNOTSUPP) || errors.Is(e, unix.ENOSYS) || errors.Is(e, unix.EINVAL):
				noWaitUnsupported.Store(true)
			}
		})
	}
	if n < len(buf) {
		m, err := f.ReadAt(buf[n:], off+int64(n))
		return n + m, err
	}
	return n, nil
}

// noWaitUnsupported: preadv2(RWF_NOWAIT) failed as unsupported once;
// readCached uses ReadAt alone from then on.
var noWaitUnsupported atomic.Bool

// rawConnOf is f's raw connection for readCached, or nil.
func rawConnOf(f *os.File) syscall.RawConn {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}
