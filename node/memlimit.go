package node

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MemoryLimit is memory_limit: the Go runtime's soft memory limit for the
// process that runs the node, a size; 0 for none (or GOMEMLIMIT's); or
// MemoryLimitAuto.
type MemoryLimit ByteSize

// MemoryLimitAuto is memory_limit "auto", the default: autoMemoryBase
// plus autoMemoryPerSession for each RTSP session open, followed as
// sessions come and go (tuneMemory), unless GOMEMLIMIT is set.
//
// Why a limit at all: the garbage collector otherwise lets the heap grow
// to twice what is live before it collects, and keeps what it grew to
// (500 players spread over a cached VOD: 145-158 MiB of RSS for about 45
// MiB live). Why it follows the sessions: a fixed limit near what a node
// holds live makes the collector run all the time (1000 live players hold
// about 70 MiB, heap and stacks), and one far above it saves nothing.
// Measured per player (node/memory_bench_test.go): 45-70 KiB live. The
// limit never goes below autoMemoryFloor of what is live, so that a node
// that holds more than its sessions account for is not collected without
// a pause.
const MemoryLimitAuto MemoryLimit = -1

const (
	autoMemoryBase       = 56 << 20
	autoMemoryPerSession = 48 << 10
	// autoMemoryEvery: how often tuneMemory looks at the sessions.
	autoMemoryEvery = time.Second
)

// autoMemoryLimit is memory_limit auto's limit with sessions open.
func autoMemoryLimit(sessions int) int64 {
	return autoMemoryBase + int64(sessions)*autoMemoryPerSession
}

// ParseMemoryLimit parses "auto", a size ("96MiB") or "0".
func ParseMemoryLimit(s string) (MemoryLimit, error) {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		return MemoryLimitAuto, nil
	}
	b, err := ParseByteSize(s)
	if err != nil {
		return 0, fmt.Errorf("%w, or auto", err)
	}
	return MemoryLimit(b), nil
}

// String prints "auto" or the size.
func (m MemoryLimit) String() string {
	if m == MemoryLimitAuto {
		return "auto"
	}
	return ByteSize(m).String()
}

// UnmarshalYAML reads "auto" or a size.
func (m *MemoryLimit) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalScalar(n, "auto or a size such as \"96MiB\"", ParseMemoryLimit, m)
}

// MarshalYAML writes "auto" or the size.
func (m MemoryLimit) MarshalYAML() (any, error) { return m.String(), nil }

// MarshalText writes "auto" or the size (JSON, flag.TextVar).
func (m MemoryLimit) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads "auto" or a size.
func (m *MemoryLimit) UnmarshalText(t []byte) error {
	v, err := ParseMemoryLimit(string(t))
	*m = v
	return err
}

// ApplyMemoryLimit sets the Go runtime's soft memory limit
// (debug.SetMemoryLimit) to memory_limit when it is a size other than 0,
// and to auto's limit for no session when it is auto and GOMEMLIMIT is not
// set (the node then follows its sessions: tuneMemory). The garbage
// collector runs more often as the heap nears the limit, instead of
// letting the heap grow to twice what is live. It is process-wide: the
// command that runs one node calls it, a process of several nodes should
// not (and their auto limits stay off).
func (c *Config) ApplyMemoryLimit() {
	switch {
	case c.MemoryLimit == MemoryLimitAuto && os.Getenv("GOMEMLIMIT") == "":
		c.autoMemory = true
		debug.SetMemoryLimit(autoMemoryLimit(0))
	case c.MemoryLimit > 0:
		debug.SetMemoryLimit(int64(c.MemoryLimit))
	}
}

// tuneMemory keeps the process's memory limit at memory_limit auto's for
// the sessions open, never below autoMemoryFloor of what the runtime
// holds, until ctx ends.
func (n *Node) tuneMemory(ctx context.Context) {
	tick := time.NewTicker(autoMemoryEvery)
	defer tick.Stop()
	set := autoMemoryLimit(0)
	samples := memorySamples()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rtmetrics.Read(samples)
		if l := max(autoMemoryLimit(n.edge.Stats().Sessions), autoMemoryFloor(samples)); l != set {
			debug.SetMemoryLimit(l)
			set = l
		}
	}
}

// The runtime/metrics autoMemoryFloor reads, in this order.
var memoryMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
}

func memorySamples() []rtmetrics.Sample {
	s := make([]rtmetrics.Sample, len(memoryMetrics))
	for i, name := range memoryMetrics {
		s[i].Name = name
	}
	return s
}

// autoMemoryFloor is the least memory_limit auto sets the limit to, from
// samples of memoryMetrics: half as much again as the heap live at the
// last collection, plus what the runtime holds besides heap objects and
// free pages (stacks, its own structures, fragmentation). A node whose
// live heap outgrows its sessions' share (ranges of a prefetch buffered,
// many peer fills at once) so collects about as often as with GOGC=50,
// never back to back.
func autoMemoryFloor(samples []rtmetrics.Sample) int64 {
	v := func(i int) int64 {
		if samples[i].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return int64(samples[i].Value.Uint64())
	}
	live, total, released, free, objects := v(0), v(1), v(2), v(3), v(4)
	return max(total-released-free-objects, 0) + live*3/2
}
