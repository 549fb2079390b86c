package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
)

// A child node is a node running in a child process: this test binary
// again, running only TestNodeProcess. A crash of the node (a SIGBUS from
// Badger) is then the child's and fails the test instead of killing the
// test binary, and the child's heap and goroutines are the node's alone,
// whatever else the test binary runs meanwhile.
//
// The parent passes the node's config as JSON in childNodeConfigEnv. The
// child prints "ready <rtsp addr> <admin addr>" once it serves, answers a
// "gc" line on its stdin with a garbage collection and a "gc" line, and
// stops the node and exits when its stdin closes: when the parent closes it
// or dies.
const childNodeConfigEnv = "RTSPMESH_TEST_CHILD_NODE_CONFIG"

// TestNodeProcess is the child's entry point; it does nothing in a normal
// test run.
func TestNodeProcess(*testing.T) {
	if conf, ok := os.LookupEnv(childNodeConfigEnv); ok {
		if err := serveChildNode(conf); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
}

// serveChildNode runs the node of the JSON config conf until stdin closes.
func serveChildNode(conf string) error {
	var cfg node.Config
	if err := json.Unmarshal([]byte(conf), &cfg); err != nil {
		return fmt.Errorf("%s: %w", childNodeConfigEnv, err)
	}
	cfg.ApplyMemoryLimit()
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	// RTSPMESH_BENCH_CPUPROFILE=file profiles the node process alone.
	stopProfile, err := testkit.ProfileCPU("RTSPMESH_BENCH_CPUPROFILE")
	if err != nil {
		return err
	}
	defer stopProfile()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	select {
	case <-n.Ready():
		fmt.Printf("ready %s %s\n", n.RTSPAddr(), n.AdminAddr())
	case err := <-errc:
		return err
	}
	stdin := make(chan struct{})
	go func() { // ends at EOF, or with the process
		defer close(stdin)
		stopWindow := func() {}
		defer func() { stopWindow() }()
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "gc":
				runtime.GC()
				fmt.Println("gc")
			case "mem":
				fmt.Println("mem " + childMem())
			case "window start":
				stopWindow = windowStart()
				fmt.Println("window", gcCycles())
			case "window end":
				stopWindow()
				stopWindow = func() {}
				fmt.Println("window", gcCycles())
			}
		}
	}()
	select {
	case <-stdin:
		cancel()
		return <-errc
	case err := <-errc:
		if err == nil {
			err = errors.New("node stopped by itself")
		}
		return err
	}
}

// childMem collects garbage and answers where the node process's memory is,
// as JSON (childMemStats); with RTSPMESH_BENCH_HEAPPROFILE or
// RTSPMESH_BENCH_GOROUTINES set it also writes the node's heap or goroutine
// profile to that file.
func childMem() string {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := childMemStats{HeapInuse: ms.HeapInuse, HeapIdle: ms.HeapIdle, HeapReleased: ms.HeapReleased,
		StackInuse: ms.StackInuse, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()}
	for env, profile := range map[string]string{"RTSPMESH_BENCH_HEAPPROFILE": "heap", "RTSPMESH_BENCH_GOROUTINES": "goroutine"} {
		if f := os.Getenv(env); f != "" {
			if w, err := os.Create(f); err == nil {
				_ = pprof.Lookup(profile).WriteTo(w, 0)
				_ = w.Close()
			}
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// windowStart starts a CPU profile of a benchmark's measurement window into
// the file RTSPMESH_BENCH_WINDOW_CPUPROFILE names, if it does, and returns
// the function that stops it.
func windowStart() (stop func()) {
	stop, err := testkit.ProfileCPU("RTSPMESH_BENCH_WINDOW_CPUPROFILE")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return func() {}
	}
	return stop
}

// gcCycles is the number of garbage collections the node process completed.
func gcCycles() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

// childMemStats is the node process's Go memory after a GC, in bytes.
type childMemStats struct {
	HeapInuse, HeapIdle, HeapReleased, StackInuse, Sys uint64
	Goroutines                                         int
}

// childNodeConfig is a node for a child process: its store in dir, TCP
// only, no mesh, the origin at originAddr under the name "o".
func childNodeConfig(dir, originAddr string) node.Config {
	cfg := node.Defaults()
	cfg.DataDir = dir
	cfg.RTSP.Listen = "127.0.0.1:0"
	cfg.RTSP.UDPRTPListen, cfg.RTSP.UDPRTCPListen = "", ""
	cfg.RTSP.Transports = []string{"tcp"}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Mesh.Enabled = false
	cfg.Origins = []node.Origin{{Name: "o", URL: "rtsp://" + originAddr}}
	return cfg
}

// childNode is a node running in a child process.
type childNode struct {
	*testkit.Child
	rtsp, api string // RTSP host:port; admin base URL
}

// startChildNode starts a node with cfg in a child process and waits until
// it serves. The child is stopped when the test ends, failed or not, and
// killed if it does not stop within testkit.StopWithin.
func startChildNode(t testing.TB, cfg node.Config) *childNode {
	t.Helper()
	conf, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &childNode{Child: testkit.StartChild(t, "^TestNodeProcess$", childNodeConfigEnv+"="+string(conf))}
	line, err := c.Line(60 * time.Second)
	if err != nil {
		t.Fatalf("child node not ready: %v\n%s", err, testkit.CrashReport(c.Stderr()))
	}
	if _, err := fmt.Sscanf(line, "ready %s %s", &c.rtsp, &c.api); err != nil {
		t.Fatalf("child node: %q\n%s", line, testkit.CrashReport(c.Stderr()))
	}
	c.api = "http://" + c.api
	return c
}

// ask sends the child command cmd (why says it in a failure) and returns
// the first line of its answer, the one that starts with cmd's first word:
// the child writes other lines (its node's output) too.
func (c *childNode) ask(t testing.TB, cmd, why string) string {
	t.Helper()
	if err := c.Send(cmd); err != nil {
		c.alive(t, why)
		t.Fatalf("child node stdin: %v", err)
	}
	word, _, _ := strings.Cut(cmd, " ")
	for {
		line, err := c.Line(30 * time.Second)
		if err != nil {
			t.Fatalf("child node %s: %v\n%s", cmd, err, testkit.CrashReport(c.Stderr()))
		}
		if line == word || strings.HasPrefix(line, word+" ") {
			return line
		}
	}
}

// gc has the child collect garbage, so that its heap figures on /metrics
// are what is live.
func (c *childNode) gc(t testing.TB) {
	t.Helper()
	c.ask(t, "gc", "asked to collect garbage")
}

// mem is where the child's memory is, after a GC.
func (c *childNode) mem(t testing.TB) childMemStats {
	t.Helper()
	v := strings.TrimPrefix(c.ask(t, "mem", "asked for its memory"), "mem ")
	var m childMemStats
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatalf("child node mem %q: %v", v, err)
	}
	return m
}

// window marks the start or the end of a benchmark's measurement window
// (what is "start" or "end"): the child profiles the window's CPU when
// RTSPMESH_BENCH_WINDOW_CPUPROFILE is set; window answers the garbage
// collections the child completed so far.
func (c *childNode) window(t testing.TB, what string) uint32 {
	t.Helper()
	line := c.ask(t, "window "+what, "asked to mark a window")
	var cycles uint32
	if _, err := fmt.Sscanf(line, "window %d", &cycles); err != nil {
		t.Fatalf("child node window: %q: %v", line, err)
	}
	return cycles
}

// alive fails the test if the child exited (a crash).
func (c *childNode) alive(t testing.TB, when string) {
	t.Helper()
	select {
	case <-c.Exited():
		t.Fatalf("node process died %s: %v\n%s", when, c.Err(), testkit.CrashReport(c.Stderr()))
	default:
	}
}

func (c *childNode) status(t testing.TB) node.NodeStatus {
	t.Helper()
	c.alive(t, "while serving")
	return getJSON[node.NodeStatus](t, "GET", c.api+"/api/v1/node", "", "", 200)
}
