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
// the last start, the store's goroutine queues them for writing with
// sync_file_range(SYNC_FILE_RANGE_WRITE), which waits for nothing to be
// written. At a rotation at most writebackEvery plus a segment is left to
// write. The disk writes the same bytes as before, spread over the fill
// instead of in one burst; a power loss also loses fewer of them.
type writeback struct {
	mu     sync.Mutex
	issued map[string]int64 // value-log file → writeback queued below this offset
	due    []fileRange      // queued, for start
}

type fileRange struct {
	path     string
	from, to int64
}

// writebackEvery: bytes of a value-log file stored between two writeback
// starts. A rotation writes at most about this much synchronously.
const writebackEvery = 4 << 20

// noteStored notes that v, a value Badger gave for a segment whose commit
// completed, is stored, and queues the writeback of its value-log file up
// to v's end when writebackEvery bytes are waiting; true when it did (the
// caller has startWriteback called). Badger appends to the value log in
// commit order, so everything before v's end in its file is written. The
// range stops at the last whole page: other commits may be writing the
// page v ends in.
func (m *valueLogMaps) noteStored(v []byte) bool {
	if m == nil || len(v) < valueThreshold {
		return false
	}
	base := uintptr(unsafe.Pointer(&v[0]))
	sp, ok := m.mapped(base, base+uintptr(len(v)))
	if !ok {
		return false
	}
	end := (sp.off + int64(base-sp.start) + int64(len(v))) &^ (pageSize - 1)
	w := &m.wb
	w.mu.Lock()
	defer w.mu.Unlock()
	from := w.issued[sp.path]
	if end-from < writebackEvery {
		return false
	}
	if w.issued == nil || len(w.issued) > 4 {
		w.issued = map[string]int64{} // files Badger rotated away from: their rest was synced then
	}
	w.issued[sp.path] = end
	w.due = append(w.due, fileRange{sp.path, from, end})
	return true
}

// startWriteback starts the writeback noteStored queued. An error leaves
// the pages to the kernel and the rotation, as without it.
func (m *valueLogMaps) startWriteback() {
	if m == nil {
		return
	}
	m.wb.mu.Lock()
	due := m.wb.due
	m.wb.due = nil
	m.wb.mu.Unlock()
	for _, r := range due {
		f := m.file(r.path)
		if f == nil {
			continue
		}
		rc, err := f.SyscallConn()
		if err != nil {
			continue
		}
		_ = rc.Control(func(fd uintptr) {
			_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(r.from), uintptr(r.to-r.from), syncFileRangeWrite, 0, 0)
		})
	}
}

const (
	pageSize           = 4 << 10
	syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
)
