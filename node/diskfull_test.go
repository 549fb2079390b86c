package node_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// The disk-full node runs in a child process (this test binary again), so
// that a SIGBUS from Badger shows as the child's crash and fails the test
// instead of killing the test binary.
const (
	diskFullDataEnv   = "DISKFULL_TEST_DATA_DIR"
	diskFullOriginEnv = "DISKFULL_TEST_ORIGIN"
	diskFullMinFree   = 8 << 20
)

// TestDiskFullNodeProcess is the child's entry point; it does nothing in a
// normal test run.
func TestDiskFullNodeProcess(t *testing.T) {
	dir := os.Getenv(diskFullDataEnv)
	if dir == "" {
		return
	}
	cfg := node.Defaults()
	cfg.DataDir = dir
	cfg.RTSP.Listen = "127.0.0.1:0"
	cfg.RTSP.UDPRTPListen, cfg.RTSP.UDPRTCPListen = "", ""
	cfg.RTSP.Transports = []string{"tcp"}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Mesh.Enabled = false
	cfg.Cache.MinFree = diskFullMinFree
	cfg.Origins = []node.Origin{{Name: "o", URL: "rtsp://" + os.Getenv(diskFullOriginEnv)}}
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	select {
	case <-n.Ready():
		fmt.Printf("ready %s %s\n", n.RTSPAddr(), n.AdminAddr())
	case err := <-errc:
		fmt.Println("error", err)
		os.Exit(2)
	}
	if err := <-errc; err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// childNode is a node running in a child process.
type childNode struct {
	cmd        *exec.Cmd
	rtsp, api  string
	stderr     *lockedBuffer
	exited     chan struct{}
	exitErr    error
	stopOnce   sync.Once
	stoppedErr error
}

func startChildNode(t *testing.T, dataDir, originAddr string) *childNode {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullNodeProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), diskFullDataEnv+"="+dataDir, diskFullOriginEnv+"="+originAddr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &childNode{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.stop(t) })
	select {
	case line := <-lines:
		var rtsp, api string
		if _, err := fmt.Sscanf(line, "ready %s %s", &rtsp, &api); err != nil {
			t.Fatalf("child node: %q\n%s", line, c.stderr)
		}
		c.rtsp, c.api = rtsp, "http://"+api
	case <-c.exited:
		t.Fatalf("child node exited before it was ready: %v\n%s", c.exitErr, c.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("child node not ready within 60s\n%s", c.stderr)
	}
	return c
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

// stop sends SIGTERM and checks a clean exit.
func (c *childNode) stop(t *testing.T) {
	t.Helper()
	c.stopOnce.Do(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-time.After(30 * time.Second):
				_ = c.cmd.Process.Kill()
				<-c.exited
				t.Errorf("node process did not stop within 30s of SIGTERM")
			}
		}
		c.stoppedErr = c.exitErr
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

// mountTmpfs mounts a tmpfs of size bytes at a new directory until the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs (the test needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fillDisk writes a file in dir until the filesystem is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 16 { // at most 4 GiB: bounded
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
	t.Fatal("the filesystem never filled")
	return ""
}

// TestDiskFullNeverCrashes: on a 20 MiB tmpfs, parallel fills run the disk
// down to cache.min_free; the node keeps serving (a player of a stored
// recording plays it whole), stops storing and relays. Restarted with the
// disk full to the last byte, it starts (read-only), serves what it has and
// relays new streams; when space is freed it resumes storing.
func TestDiskFullNeverCrashes(t *testing.T) {
	dir := mountTmpfs(t, "20m")
	media := map[string][]byte{"kept.ts": origin.SampleClip(), "fresh.ts": origin.SampleClip(), "later.ts": origin.SampleClip()}
	const fills = 12
	for i := range fills {
		media[fmt.Sprintf("c%02d.ts", i)] = origin.SampleClip()
	}
	org := startOrigin(t, func(c *origin.Config) { c.Media = media })
	t0 := time.Now()
	mark := func(format string, a ...any) {
		t.Logf("timeline %6.1fs  free %5.1f MiB  %s", time.Since(t0).Seconds(), float64(freeBytes(t, dir))/(1<<20), fmt.Sprintf(format, a...))
	}

	c := startChildNode(t, dir, org.Addr())
	mark("node started on an empty 20 MiB tmpfs (cache.min_free 8 MiB)")
	ref := frameMD5(t, "rtsp://"+c.rtsp+"/o/kept.ts", "tcp")
	testkit.Eventually(t, 30*time.Second, "kept.ts complete", func() bool {
		for _, s := range getJSON[[]node.StreamStatus](t, "GET", c.api+"/api/v1/streams", "", "", 200) {
			if strings.HasSuffix(s.Key, "/kept.ts") {
				return s.State == "complete"
			}
		}
		return false
	})
	mark("kept.ts stored complete (%d frames played)", len(ref))

	// A player of kept.ts plays it through while the fills run the disk down.
	played := make(chan decoded, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { played <- decode("rtsp://"+c.rtsp+"/o/kept.ts", "tcp") })
	for i := range fills {
		wg.Go(func() {
			code, b := call(t, "POST", c.api+"/api/v1/prefetch", "", fmt.Sprintf(`{"path": "o/c%02d.ts"}`, i))
			if code != 202 {
				t.Errorf("prefetch c%02d: %d %s", i, code, b)
			}
		})
	}
	mark("%d parallel fills started", fills)
	var minFree int64 = 1 << 40
	stopped := false
	testkit.Eventually(t, 90*time.Second, "storing to stop and the fills to end", func() bool {
		minFree = min(minFree, freeBytes(t, dir))
		st := c.status(t)
		if !st.Storage.Storing && !stopped {
			stopped = true
			mark("storing stopped (node says %d bytes free, %d segments refused)", st.Storage.Free, st.Storage.Refused)
		}
		return stopped && st.Fills == 0
	})
	mark("all fills ended; lowest free seen %.1f MiB", float64(minFree)/(1<<20))
	sameFrames(t, "kept.ts played during the fills", (<-played).frames(t), ref)
	mark("the player of kept.ts got every frame")
	if minFree < diskFullMinFree/2 {
		t.Errorf("free space fell to %d bytes, below half of cache.min_free", minFree)
	}
	c.alive(t, "after the fills")
	c.stop(t)
	mark("node stopped (SIGTERM, clean exit)")

	filler := fillDisk(t, dir)
	mark("filler file written until ENOSPC")
	c = startChildNode(t, dir, org.Addr())
	st := c.status(t)
	mark("node restarted on the full disk: storing=%v read_only=%v", st.Storage.Storing, st.Storage.ReadOnly)
	if st.Storage.Storing || !st.Storage.ReadOnly {
		t.Fatalf("started on a full disk: %+v", st.Storage)
	}
	// It serves what it has, and relays what it has not.
	wg.Go(func() { played <- decode("rtsp://"+c.rtsp+"/o/fresh.ts", "tcp") })
	sameFrames(t, "kept.ts played from a full disk", frameMD5(t, "rtsp://"+c.rtsp+"/o/kept.ts", "tcp"), ref)
	sameFrames(t, "fresh.ts relayed on a full disk", (<-played).frames(t), ref)
	mark("kept.ts served and fresh.ts relayed from the full disk")
	for _, s := range getJSON[[]node.StreamStatus](t, "GET", c.api+"/api/v1/streams", "", "", 200) {
		if strings.HasSuffix(s.Key, "/fresh.ts") {
			t.Fatalf("fresh.ts was stored on a full disk: %+v", s)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mark("filler file deleted")
	testkit.Eventually(t, 60*time.Second, "storing to resume", func() bool { return c.status(t).Storage.Storing })
	mark("storing resumed")
	if code, b := call(t, "POST", c.api+"/api/v1/prefetch", "", `{"path": "o/later.ts"}`); code != 202 {
		t.Fatalf("prefetch after recovery: %d %s", code, b)
	}
	testkit.Eventually(t, 30*time.Second, "later.ts to be stored", func() bool {
		for _, s := range getJSON[[]node.StreamStatus](t, "GET", c.api+"/api/v1/streams", "", "", 200) {
			if strings.HasSuffix(s.Key, "/later.ts") && s.Segments > 0 {
				return true
			}
		}
		return false
	})
	mark("later.ts is being stored again")
	c.alive(t, "at the end")
}
