package node

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestApplyMemoryLimit: memory_limit sets the Go runtime's soft memory
// limit; 0 leaves it as it was.
func TestApplyMemoryLimit(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
	debug.SetMemoryLimit(math.MaxInt64)

	c := Defaults()
	c.ApplyMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("memory_limit 0: the runtime's limit became %d", got)
	}
	c.MemoryLimit = 96 << 20
	c.ApplyMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != 96<<20 {
		t.Fatalf("memory_limit 96MiB: the runtime's limit is %d", got)
	}
}
