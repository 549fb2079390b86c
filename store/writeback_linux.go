//go:build linux

package store

import (
	"sync"
	"syscall"
	"unsafe"
)

// Writeback of the value log.
//
// Badger writes the value log through a shared mapping and, with SyncWrites
// off, leaves the pages to the kernel, which writes dirty pages back only
// after dirty_expire (30 s) or above dirty_background_ratio (10 % of
// memory): at the speed of a fill, the whole current file is still dirty
// when Badger rotates it, and the rotation (logFile.doneWriting, then
// z.MmapFile.Truncate) msyncs it with MS_SYNC whatever SyncWrites says. That
// wrote the whole 64 MiB file synchronously on Badger's one write
// goroutine: 40–80 ms on the development machine's disk (more while other
// processes wrote), every 64 MiB, during which no segment of any recording
// was committed; a disk writing 150 MB/s would stall every commit for
// 0.4 s. So the store starts the writeback itself, as RocksDB's
// bytes_per_sync does: once writebackEvery bytes of a file were stored since
// the last start, sync_file_range(SYNC_FILE_RANGE_WRITE) queues them for
// writing and returns (it waits for nothing written). At a rotation at most
// writebackEvery plus a segment is left to write. The disk writes the same
// bytes as before, spread over the fill instead of in one burst; a power
// loss also loses fewer of them.
type writeback struct {
	mu     sync.Mutex
	issued map[string]int64 // value-log file → writeback started below this offset
}

// writebackEvery: bytes of a value-log file stored between two writeback
// starts. A rotation writes at most about this much synchronously.
const writebackEvery = 4 << 20

// writeBack notes that v, a value Badger gave for a segment whose commit
// completed, is stored, and starts the kernel's writeback of its value-log
// file up to v's end when writebackEvery bytes are waiting. Badger appends
// to the value log in commit order, so everything before v's end in its
// file is written. The range stops at the last whole page: other commits
// may be writing the page v ends in.
func (m *valueLogMaps) writeBack(v []byte) {
	if m == nil || len(v) < valueThreshold {
		return
	}
	base := uintptr(unsafe.Pointer(&v[0]))
	sp, ok := m.mapped(base, base+uintptr(len(v)))
	if !ok {
		return
	}
	end := (sp.off + int64(base-sp.start) + int64(len(v))) &^ (pageSize - 1)
	w := &m.wb
	w.mu.Lock()
	from := w.issued[sp.path]
	if end-from < writebackEvery {
		w.mu.Unlock()
		return
	}
	if w.issued == nil || len(w.issued) > 4 {
		w.issued = map[string]int64{} // files Badger rotated away from: their rest was synced then
	}
	w.issued[sp.path] = end
	w.mu.Unlock()
	f := m.file(sp.path)
	if f == nil {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	// An error leaves the pages to the kernel and the rotation, as before.
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(from), uintptr(end-from), syncFileRangeWrite, 0, 0)
	})
}

const (
	pageSize           = 4 << 10
	syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
)
