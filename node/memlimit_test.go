package node

import (
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestApplyMemoryLimit: memory_limit sets the Go runtime's soft memory
// limit; 0 leaves it as it was; auto (the default) sets its limit for no
// session, unless GOMEMLIMIT is set.
func TestApplyMemoryLimit(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
	debug.SetMemoryLimit(math.MaxInt64)

	c := Defaults()
	c.MemoryLimit = 0
	c.ApplyMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 || c.autoMemory {
		t.Fatalf("memory_limit 0: the runtime's limit became %d (auto %v)", got, c.autoMemory)
	}
	c.MemoryLimit = 96 << 20
	c.ApplyMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != 96<<20 || c.autoMemory {
		t.Fatalf("memory_limit 96MiB: the runtime's limit is %d (auto %v)", got, c.autoMemory)
	}

	c = Defaults()
	if c.MemoryLimit != MemoryLimitAuto {
		t.Fatalf("default memory_limit %v, want auto", c.MemoryLimit)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(math.MaxInt64)
	c.ApplyMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 || c.autoMemory {
		t.Fatalf("memory_limit auto with GOMEMLIMIT set: the runtime's limit became %d (auto %v)", got, c.autoMemory)
	}
	t.Setenv("GOMEMLIMIT", "")
	c.ApplyMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != autoMemoryLimit(0) || !c.autoMemory {
		t.Fatalf("memory_limit auto: the runtime's limit is %d (auto %v), want %d", got, c.autoMemory, autoMemoryLimit(0))
	}
	if got, want := autoMemoryLimit(500), int64(56<<20+500*48<<10); got != want {
		t.Fatalf("auto's limit at 500 sessions %d, want %d", got, want)
	}
}

// TestMemoryLimitText: memory_limit reads and writes auto, sizes and 0, in
// YAML and from the environment, and refuses anything else.
func TestMemoryLimitText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MemoryLimit
	}{{"auto", MemoryLimitAuto}, {"AUTO", MemoryLimitAuto}, {"96MiB", 96 << 20}, {"0", 0}} {
		var got struct {
			M MemoryLimit `yaml:"m"`
		}
		if err := yaml.Unmarshal([]byte("m: "+tc.in), &got); err != nil || got.M != tc.want {
			t.Fatalf("yaml %q: %v, %v; want %v", tc.in, got.M, err, tc.want)
		}
		out, err := yaml.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var back struct {
			M MemoryLimit `yaml:"m"`
		}
		if err := yaml.Unmarshal(out, &back); err != nil || back.M != tc.want {
			t.Fatalf("yaml round trip of %q (%s): %v, %v", tc.in, out, back.M, err)
		}
		c := Defaults()
		if err := c.ApplyEnv([]string{EnvName("memory_limit") + "=" + tc.in}); err != nil || c.MemoryLimit != tc.want {
			t.Fatalf("env %q: %v, %v", tc.in, c.MemoryLimit, err)
		}
	}
	for _, bad := range []string{"lots", "-5MiB", ""} {
		if _, err := ParseMemoryLimit(bad); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}

// TestAutoMemoryFloor: with more live than the sessions' share (96 MiB
// held, as a prefetch's buffered ranges may be; auto's limit for 500
// sessions is 80 MiB), the floor tuneMemory keeps the limit above is half
// as much again as the live heap, so the collector does not run back to
// back.
func TestAutoMemoryFloor(t *testing.T) {
	hold := make([][]byte, 96)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
		hold[i][0] = byte(i)
	}
	runtime.GC()
	s := memorySamples()
	rtmetrics.Read(s)
	live := int64(s[0].Value.Uint64())
	floor := autoMemoryFloor(s)
	runtime.KeepAlive(hold)
	if live < 96<<20 {
		t.Fatalf("live heap %d after holding 96 MiB", live)
	}
	if floor < live*3/2 || floor > live*3/2+64<<20 {
		t.Fatalf("floor %d MiB with %d MiB live, want 1.5 × live plus the runtime's own (< 64 MiB)", floor>>20, live>>20)
	}
}
