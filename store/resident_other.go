//go:build !linux

package store

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
