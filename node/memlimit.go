package node

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
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
// Measured per player (node/memory_bench_test.go): 45-70 KiB live.
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
// the sessions open, until ctx ends.
func (n *Node) tuneMemory(ctx context.Context) {
	tick := time.NewTicker(autoMemoryEvery)
	defer tick.Stop()
	set := autoMemoryLimit(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if l := autoMemoryLimit(n.edge.Stats().Sessions); l != set {
			debug.SetMemoryLimit(l)
			set = l
		}
	}
}
