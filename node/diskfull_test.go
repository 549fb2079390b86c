package node_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// The disk-full node runs in a child process (startChildNode), so that a
// SIGBUS from Badger shows as the child's crash and fails the test instead
// of killing the test binary.
const diskFullMinFree = 8 << 20

// diskFullConfig is the disk-full node's config: cache.min_free 8 MiB.
func diskFullConfig(dir, originAddr string) node.Config {
	cfg := childNodeConfig(dir, originAddr)
	cfg.Cache.MinFree = diskFullMinFree
	return cfg
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

	c := startChildNode(t, diskFullConfig(dir, org.Addr()))
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
	c.Stop(t)
	mark("node stopped (stdin closed, clean exit)")

	filler := fillDisk(t, dir)
	mark("filler file written until ENOSPC")
	c = startChildNode(t, diskFullConfig(dir, org.Addr()))
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
