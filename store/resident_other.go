//go:build !linux

package store

import (
	"os"
	"syscall"
)

// valueLogMaps releases nothing outside Linux: the value log's pages stay
// in the process's resident set until the kernel reclaims them.
type valueLogMaps struct{}

func newResident(string, bool) *valueLogMaps { return nil }

func (*valueLogMaps) release([]byte, int, int) {}

// noteStored and startWriteback leave the value log's pages to the kernel
// outside Linux.
func (*valueLogMaps) noteStored([]byte) bool { return false }
func (*valueLogMaps) startWriteback()        {}

func (*valueLogMaps) copyOut(dst, v []byte, off int) *valueLoc {
	copy(dst, v[off:])
	return nil
}

func (*valueLogMaps) close() {}

func (*valueLogMaps) remapped() {}

// readCached is f.ReadAt outside Linux.
func readCached(f *os.File, _ syscall.RawConn, buf []byte, off int64) (int, error) {
	return f.ReadAt(buf, off)
}

func rawConnOf(*os.File) syscall.RawConn { return nil }
