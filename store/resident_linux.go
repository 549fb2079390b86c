//go:build linux

package store

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// valueLogMaps knows where this process maps the store's value-log files,
// so that pages read or written there can be taken out of its resident set
// (release). Badger maps every value-log file (MAP_SHARED) and reads and
// writes values through the mapping; a page touched once stays in the
// process's RSS, as file-backed memory, until the kernel needs it. A store
// that served a long recording to players spread over it, or wrote one,
// would show the whole recording in its RSS.
type valueLogMaps struct {
	dir string // the value log's directory, absolute, symbolic links resolved

	mu      sync.Mutex
	spans   []mappedSpan        // sorted by start
	checked time.Time           // when /proc/self/maps was last read
	swept   time.Time           // last sweep
	files   map[string]vlogFile // value-log files opened to read (readAt)

	wb writeback // writeback_linux.go
}

// mappedSpan is one mapping: [start, end) maps the file path from offset off.
type mappedSpan struct {
	start, end uintptr
	off        int64
	path       string
}

// remapCheck: /proc/self/maps is read again when the list is this old, so
// that a new value-log file is known and a file Badger unmapped (value-log
// GC, rotation) is forgotten within it.
const (
	remapCheck = time.Second
	remapMiss  = 10 * time.Millisecond
)

// newResident is the store's valueLogMaps: nil in memory.
func newResident(dir string, inMemory bool) *valueLogMaps {
	if inMemory {
		return nil
	}
	return newValueLogMaps(dir)
}

func newValueLogMaps(dir string) *valueLogMaps {
	abs, err := filepath.Abs(dir)
	if err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
	}
	return &valueLogMaps{dir: abs, files: map[string]vlogFile{}}
}

// copyOut copies v[off:off+len(dst)] into dst, v being a value Badger gave,
// and returns where v is in its value-log file when it read it from there
// (else nil). A value in a value-log file is read from the file (pread,
// from the page cache): its pages do not enter this process's resident
// memory, and no page fault is paid for them; only the entry's header,
// which Badger read, maps the pages around it, which sweep releases. Else,
// or when that read fails, it copies from v and releases what it read.
func (m *valueLogMaps) copyOut(dst, v []byte, off int) *valueLoc {
	if m != nil && len(v) >= valueThreshold {
		base := uintptr(unsafe.Pointer(&v[0]))
		if sp, ok := m.mapped(base, base+uintptr(len(v))); ok {
			if vf := m.file(sp.path); vf.f != nil {
				loc := &valueLoc{f: vf.f, raw: vf.raw, off: sp.off + int64(base-sp.start)}
				if n, err := vf.f.ReadAt(dst, loc.off+int64(off)); err == nil && n == len(dst) {
					m.sweep(base)
					return loc
				}
			}
		}
	}
	copy(dst, v[off:])
	m.release(v, off, off+len(dst))
	return nil
}

// sweep releases the whole mapping that addr is in, at most every
// sweepEvery: each read maps the 64 KiB around its entry's header (Badger
// reads it), and one madvise over a file's mapping costs far less than
// one per read. The list of mappings is read again first, so the range
// released is the file's mapping now; the caller holds Badger's read lock
// of that file (inside Item.Value), so it cannot change meanwhile.
func (m *valueLogMaps) sweep(addr uintptr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Since(m.swept) < sweepEvery {
		return
	}
	m.swept, m.checked = time.Now(), time.Now()
	m.spans = m.read()
	m.forget()
	if sp, ok := m.spanOf(addr, addr+1); ok {
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, sp.start, sp.end-sp.start, syscall.MADV_DONTNEED)
	}
}

// sweepEvery: see sweep. The pages a file's reads mapped since are at most
// 64 KiB a read: about 10 MiB at 500 players of 2 Mbit/s.
const sweepEvery = 20 * time.Millisecond

// file is the value-log file path opened for reading (f nil when it
// cannot be opened).
func (m *valueLogMaps) file(path string) vlogFile {
	m.mu.Lock()
	defer m.mu.Unlock()
	if vf, ok := m.files[path]; ok {
		return vf
	}
	f, err := os.Open(path)
	if err != nil {
		return vlogFile{}
	}
	vf := vlogFile{f: f, raw: rawConnOf(f)}
	m.files[path] = vf
	return vf
}

// vlogFile is a value-log file opened to read, and its raw connection
// (readCached, startWriteback): made once, not at every use.
type vlogFile struct {
	f   *os.File
	raw syscall.RawConn
}

// forget closes the files no mapping shows any more (Badger deleted them
// after value-log GC: an open descriptor would keep their space). m.mu is
// held. A read in flight on one ends before the descriptor closes (os.File
// counts its users) or fails, and copyOut then copies from the mapping.
func (m *valueLogMaps) forget() {
	live := map[string]bool{}
	for _, sp := range m.spans {
		live[sp.path] = true
	}
	for path, vf := range m.files {
		if !live[path] {
			_ = vf.f.Close()
			delete(m.files, path)
		}
	}
}

// remapped has the list of mappings read again at its next use: Badger
// unmapped (value-log GC deleted) or remapped files. A mapping the list
// still shows may by then be another's: copyOut would read the wrong file.
func (m *valueLogMaps) remapped() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checked = time.Time{}
}

// close closes the files opened to read.
func (m *valueLogMaps) close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.spans = nil
	m.forget()
}

// release takes the pages of v[off:end] out of the process's resident set
// (madvise MADV_DONTNEED) when v, a value Badger gave, lies in a shared
// mapping of one of the store's value-log files; the page cache keeps
// them, so the next access is a minor fault, not a disk read. Anything else
// is left alone: on anonymous or private memory (the Go heap, Badger's
// memtables, thread stacks, the race detector's own memory) the same call
// would discard the contents. The caller must keep the mapping alive
// meanwhile (Badger holds the file's read lock during Item.Value).
//
// Only pages that hold a byte of v are released: those are in the mapping
// Badger gave v from, whatever happened since the list of mappings was
// read. The list may be up to remapCheck old: Badger shrinks a file's
// mapping when it rotates the file and unmaps one it deletes, and what the
// list still shows as that file's may be another mapping by now. (Until
// 2026-12-03 the range reached a fault-around's 64 KiB past v within the
// listed mapping: in a node filling a small disk fast, where files rotate
// often, its process crashed with a corrupted stack, very likely so.)
func (m *valueLogMaps) release(v []byte, off, end int) {
	// Values under Badger's value threshold are not in the value log.
	end = min(end, len(v))
	if m == nil || len(v) < valueThreshold || off >= end {
		return
	}
	base := uintptr(unsafe.Pointer(&v[0]))
	if _, ok := m.mapped(base, base+uintptr(len(v))); !ok {
		return
	}
	// A read fault maps the pages around it that the page cache holds
	// (fault-around, 64 KiB by default), and Badger read the entry's header
	// and key before v: those pages outside v stay until the file's next
	// sweep (copyOut) or until the next value's release covers them (a
	// segment's header shares a page with the value before it).
	// The pages of v[off:end] are in v's mapping (a mapping is whole pages),
	// so the listed span's bounds, which may be stale, are not needed.
	start := (base + uintptr(off)) &^ (pageSize - 1)
	stop := (base + uintptr(end) + pageSize - 1) &^ (pageSize - 1)
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, start, stop-start, syscall.MADV_DONTNEED)
}

// mapped returns the value-log mapping [start, end) lies in. The list is
// read again when it is remapCheck old, and, at most every remapMiss, when
// the range is in none (Badger opened a value-log file).
func (m *valueLogMaps) mapped(start, end uintptr) (mappedSpan, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	since := time.Since(m.checked)
	sp, ok := m.spanOf(start, end)
	if since >= remapCheck || since >= remapMiss && !ok {
		m.checked = time.Now()
		m.spans = m.read()
		m.forget()
		sp, ok = m.spanOf(start, end)
	}
	return sp, ok
}

func (m *valueLogMaps) spanOf(start, end uintptr) (mappedSpan, bool) {
	i := sort.Search(len(m.spans), func(i int) bool { return m.spans[i].end > start })
	if i < len(m.spans) && m.spans[i].start <= start && end <= m.spans[i].end {
		return m.spans[i], true
	}
	return mappedSpan{}, false
}

// read lists the shared mappings of *.vlog files in m.dir from
// /proc/self/maps ("start-end perms offset dev inode path").
func (m *valueLogMaps) read() []mappedSpan {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var spans []mappedSpan
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || len(fields[1]) < 4 || fields[1][3] != 's' {
			continue
		}
		path := string(bytes.Join(fields[5:], []byte(" ")))
		if filepath.Ext(path) != ".vlog" || filepath.Dir(path) != m.dir {
			continue
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(string(lo), 16, 64)
		e, err2 := strconv.ParseUint(string(hi), 16, 64)
		off, err3 := strconv.ParseInt(string(fields[2]), 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		spans = append(spans, mappedSpan{start: uintptr(s), end: uintptr(e), off: off, path: path})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	return spans
}
