package node

import "runtime/debug"

// ApplyMemoryLimit sets the Go runtime's soft memory limit
// (debug.SetMemoryLimit) to memory_limit, when it is not 0: the garbage
// collector then runs more often as the heap nears it, instead of letting
// the heap grow to twice what is live. It is process-wide: the command
// that runs one node calls it, a process of several nodes should not.
func (c *Config) ApplyMemoryLimit() {
	if c.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(c.MemoryLimit))
	}
}
