package node

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestThrottledReaderHoldsTheCap: what a throttled reader passes on takes
// at least its size over the cap (less the first burst), and arrives whole.
func TestThrottledReaderHoldsTheCap(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("rtspmesh"), 1<<17) // 1 MiB
	th := newThrottles(Config{Mesh: MeshConfig{RateLimit: 16_000_000}})
	start := time.Now()
	got, err := io.ReadAll(th.peer("p", bytes.NewReader(data)))
	took := time.Since(start)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(data))
	}
	// 1 MiB at 2 MB/s is 0.52 s, of which the first burst (0.1 s) is free.
	if took < 400*time.Millisecond {
		t.Fatalf("1 MiB through a 16 Mbit/s cap in %v", took)
	}
	if r := th.peer("q", bytes.NewReader(nil)); r == nil {
		t.Fatal("no reader for a second peer")
	}
	if th := newThrottles(Config{}); th.peer("p", bytes.NewReader(data)) == nil || th.origin(&Origin{Name: "o"}) != nil {
		t.Fatal("without caps a reader must pass through and an origin have no wrapper")
	}
}
