//go:build linux

package store

import (
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The value log's pages: behind the writes and ahead of them.
//
// Badger writes the value log through a shared mapping of a sparse file and
// leaves its pages to the kernel (SyncWrites off). Two costs of that fell
// on Badger's one write goroutine, during which no segment of any recording
// was committed:
//
//   - Behind: the kernel writes dirty pages back only after dirty_expire
//     (30 s) or above dirty_background_ratio (10 % of memory), so at the
//     speed of a fill the whole current file was still dirty when Badger
//     rotated it, and the rotation (logFile.doneWriting, then
//     z.MmapFile.Truncate) msyncs it with MS_SYNC whatever SyncWrites says:
//     40–80 ms on the development machine's disk, every 64 MiB (a disk
//     writing 150 MB/s would stall every commit for 0.4 s). So once
//     writebackEvery bytes of a file were stored since the last start, the
//     store's goroutine queues them for writing with
//     sync_file_range(SYNC_FILE_RANGE_WRITE), which waits for nothing to be
//     written, as RocksDB's bytes_per_sync does. A rotation then has at most
//     that much plus a segment left to write; a power loss loses fewer of
//     the bytes too.
//   - Ahead: Badger's first write to a page of the file faults it in: the
//     kernel fills it, and the read-ahead window around it (8 MiB on the
//     development machine's disk), with zeros (measured 1–30 ms per 8 MiB
//     there, by how fresh the memory it got was: a virtual machine's host
//     maps pages the guest freed on first touch), then has the file system
//     reserve its block and mark it dirty; 17 % of a fill's CPU in one
//     profile, and a third of Badger's write goroutine's. So the store's
//     goroutine faults the next prefetchAhead bytes of the mapping in for
//     writing (MADV_POPULATE_WRITE, Linux 5.14; older kernels refuse it and
//     nothing changes), which does all of that without changing a byte, and
//     Badger's writes find the pages ready. (posix_fadvise WILLNEED did only
//     the zeroing, and into 4 KiB folios that reads then copied out at half
//     the speed; the fault path gives the large folios Badger's own faults
//     would.) Pages are asked for up to the file's nominal size only (Badger
//     maps a file at twice that, space.go): Badger writes every page below
//     it before it rotates the file, so no page of zeros is left dirty for
//     the rotation's msync. They are in this process's RSS until written
//     and released (releaseStored): at most prefetchAhead, kept small for
//     that (a node's RSS has targets); the kernel's read-ahead still zeroes
//     its whole window into the page cache at the first fault, and Badger's
//     faults there only map pages and reserve blocks. The mapping may
//     have moved meanwhile (Badger remaps a file it rotates): the call
//     changes no byte wherever it lands, and fails outside any writable
//     mapping.
type writeback struct {
	mu     sync.Mutex
	issued map[string]int64 // value-log file → writeback queued below this offset
	ahead  map[string]int64 // value-log file → pages asked for below this offset
	due    []fileRange      // queued, for startWriteback
}

type fileRange struct {
	path     string
	from, to int64
	addr     uintptr // ahead of the writes: where from is mapped; 0 behind them
}

// writebackEvery: bytes of a value-log file stored between two writeback
// starts. A rotation writes at most about this much synchronously.
// prefetchAhead: how far ahead of the last stored segment the file's pages
// are asked for, every prefetchAhead/2 stored.
const (
	writebackEvery = 4 << 20
	prefetchAhead  = 2 << 20
)

// noteStored notes that v, a value Badger gave for a segment whose commit
// completed, is stored, and queues the writeback of its value-log file up
// to v's end when writebackEvery bytes are waiting, and the pages ahead of
// it when fewer than half of prefetchAhead are left; true when it queued
// any (the caller has startWriteback called). Badger appends to the value
// log in commit order, so everything before v's end in its file is written.
// The writeback stops at the last whole page: other commits may be writing
// the page v ends in.
func (m *valueLogMaps) noteStored(v []byte) bool {
	if m == nil || len(v) < valueThreshold {
		return false
	}
	base := uintptr(unsafe.Pointer(&v[0]))
	sp, ok := m.mapped(base, base+uintptr(len(v)))
	if !ok {
		return false
	}
	stored := sp.off + int64(base-sp.start) + int64(len(v))
	end := stored &^ (pageSize - 1)
	w := &m.wb
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.issued == nil || len(w.issued) > 4 {
		// Files Badger rotated away from: their rest was synced then.
		w.issued, w.ahead = map[string]int64{}, map[string]int64{}
	}
	queued := false
	if from := w.issued[sp.path]; end-from >= writebackEvery {
		w.issued[sp.path] = end
		w.due = append(w.due, fileRange{path: sp.path, from: from, to: end})
		queued = true
	}
	if to := w.ahead[sp.path]; to-stored < prefetchAhead/2 {
		from := max(to, end) // both at a page boundary: madvise takes whole pages
		to = min((stored+prefetchAhead+pageSize-1)&^(pageSize-1), sp.off+int64(sp.end-sp.start)/2)
		w.ahead[sp.path] = to
		if to > from {
			w.due = append(w.due, fileRange{path: sp.path, from: from, to: to, addr: sp.start + uintptr(from-sp.off)})
			queued = true
		}
	}
	return queued
}

// startWriteback starts the writeback and asks for the pages noteStored
// queued. An error leaves the pages to the kernel and Badger, as without
// it.
func (m *valueLogMaps) startWriteback() {
	if m == nil {
		return
	}
	m.wb.mu.Lock()
	due := m.wb.due
	m.wb.due = nil
	m.wb.mu.Unlock()
	for _, r := range due {
		if r.addr != 0 {
			_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, r.addr, uintptr(r.to-r.from), unix.MADV_POPULATE_WRITE)
			continue
		}
		vf := m.file(r.path)
		if vf.raw == nil {
			continue
		}
		_ = vf.raw.Control(func(fd uintptr) {
			_ = unix.SyncFileRange(int(fd), r.from, r.to-r.from, unix.SYNC_FILE_RANGE_WRITE)
		})
	}
}

const pageSize = 4 << 10
