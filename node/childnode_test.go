package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

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
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
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
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "gc" {
				runtime.GC()
				fmt.Println("gc")
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
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	lines     chan string // the child's stdout
	rtsp, api string      // RTSP host:port; admin base URL
	stderr    *lockedBuffer
	exited    chan struct{}
	exitErr   error
	stopOnce  sync.Once
}

// startChildNode starts a node with cfg in a child process and waits until
// it serves. The child is stopped when the test ends, failed or not
// (stop), and killed if it does not stop within 30 s.
func startChildNode(t *testing.T, cfg node.Config) *childNode {
	t.Helper()
	conf, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childNodeConfigEnv+"="+string(conf))
	c := &childNode{cmd: cmd, lines: make(chan string, 16), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // owned by stop, which waits for exited
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody asked: the test framework's PASS
			}
		}
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.stop(t) })
	line, err := c.line(60 * time.Second)
	if err != nil {
		t.Fatalf("child node not ready: %v\n%s", err, crashReport(c.stderr.String()))
	}
	var rtsp, api string
	if _, err := fmt.Sscanf(line, "ready %s %s", &rtsp, &api); err != nil {
		t.Fatalf("child node: %q\n%s", line, crashReport(c.stderr.String()))
	}
	c.rtsp, c.api = rtsp, "http://"+api
	return c
}

// line is the child's next stdout line.
func (c *childNode) line(within time.Duration) (string, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case line := <-c.lines:
		return line, nil
	case <-c.exited:
		return "", fmt.Errorf("exited: %v", c.exitErr)
	case <-timer.C:
		return "", fmt.Errorf("no answer within %v", within)
	}
}

// gc has the child collect garbage, so that its heap figures on /metrics
// are what is live.
func (c *childNode) gc(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "gc\n"); err != nil {
		c.alive(t, "asked to collect garbage")
		t.Fatalf("child node stdin: %v", err)
	}
	for {
		line, err := c.line(30 * time.Second)
		if err != nil {
			t.Fatalf("child node gc: %v\n%s", err, crashReport(c.stderr.String()))
		}
		if line == "gc" {
			return
		}
	}
}

// alive fails the test if the child exited (a crash).
func (c *childNode) alive(t *testing.T, when string) {
	t.Helper()
	select {
	case <-c.exited:
		t.Fatalf("node process died %s: %v\n%s", when, c.exitErr, crashReport(c.stderr.String()))
	default:
	}
}

// stop closes the child's stdin and checks a clean exit; a child that has
// not exited 30 s later is killed.
func (c *childNode) stop(t *testing.T) {
	t.Helper()
	c.stopOnce.Do(func() {
		_ = c.stdin.Close()
		timer := time.NewTimer(30 * time.Second)
		defer timer.Stop()
		select {
		case <-c.exited:
		case <-timer.C:
			_ = c.cmd.Process.Kill()
			<-c.exited
			t.Errorf("node process did not stop within 30s of its stdin closing")
		}
		if c.exitErr != nil {
			t.Errorf("node process: %v\n%s", c.exitErr, crashReport(c.stderr.String()))
		}
		if s := c.stderr.String(); strings.Contains(s, "SIGBUS") || strings.Contains(s, "fatal error") {
			t.Errorf("node process crashed:\n%s", crashReport(s))
		}
	})
}

// crashReport is the head of a Go crash in s (the fatal error and the
// faulting goroutine), or the end of the log.
func crashReport(s string) string {
	for _, mark := range []string{"fatal error", "unexpected fault", "SIGBUS", "panic:"} {
		if i := strings.Index(s, mark); i >= 0 {
			return s[max(i-200, 0):min(i+1500, len(s))]
		}
	}
	return tail(s, 40)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func (c *childNode) status(t *testing.T) node.NodeStatus {
	t.Helper()
	c.alive(t, "while serving")
	return getJSON[node.NodeStatus](t, "GET", c.api+"/api/v1/node", "", "", 200)
}

// TestChildNodeStoppedAtTestEnd: a child node started in a test is gone
// once that test has ended, and its stdin closing is enough to stop it.
func TestChildNodeStoppedAtTestEnd(t *testing.T) {
	t.Parallel()
	var c *childNode
	t.Run("child", func(t *testing.T) {
		c = startChildNode(t, childNodeConfig(t.TempDir(), "127.0.0.1:1")) // no player: the origin is never asked
		c.status(t)
	})
	select {
	case <-c.exited:
	default:
		t.Fatalf("child node %d still running after its test ended", c.cmd.Process.Pid)
	}
	if c.exitErr != nil {
		t.Errorf("child node: %v", c.exitErr)
	}
}
