//go:build linux

package store

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestReleaseStaysInValueMapping: the list of mappings may still show a
// value-log file's mapping as it was before Badger shrank or unmapped it
// (it is read again at most every remapCheck), while something else is
// mapped past the file's end now. Releasing a value near the file's end
// takes out only the pages that hold the value: the private memory after
// the file's mapping keeps its bytes (before, the fault-around's 64 KiB past
// the value were released within the listed mapping, and zeroed them), and
// the value reads the same.
func TestReleaseStaysInValueMapping(t *testing.T) {
	const (
		page     = 4 << 10
		fileSize = 64<<10 + 3*page // not a multiple of the fault-around's 64 KiB
		region   = 256 << 10
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "000001.vlog")
	content := bytes.Repeat([]byte("rtspmesh"), fileSize/8)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Private memory for the whole region, then the file shared over its
	// start: what is past the file's mapping is anonymous and private.
	mem, err := syscall.Mmap(-1, 0, region, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Munmap(mem) }()
	base := uintptr(unsafe.Pointer(&mem[0]))
	if _, _, errno := syscall.Syscall6(syscall.SYS_MMAP, base, fileSize, syscall.PROT_READ,
		syscall.MAP_SHARED|syscall.MAP_FIXED, f.Fd(), 0); errno != 0 {
		t.Fatal(errno)
	}
	private := mem[fileSize:]
	for i := range private {
		private[i] = 0xab
	}

	m := newValueLogMaps(dir)
	// The list as it was when the file was mapped whole (Badger maps a
	// value-log file at twice its size): it still covers the private memory.
	m.spans = []mappedSpan{{start: base, end: base + region, path: path}}
	m.checked = time.Now()
	v := mem[fileSize-2048 : fileSize-16]
	m.release(v, 0, len(v))

	for i, b := range private {
		if b != 0xab {
			t.Fatalf("the private memory past the file's mapping was changed at %d bytes past its end (%#x): release went past the value's pages", i, b)
		}
	}
	if !bytes.Equal(v, content[fileSize-2048:fileSize-16]) {
		t.Fatal("the value reads differently after its release")
	}
}
