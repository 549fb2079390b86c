package interop

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mount is a stream gst-rtsp-server serves.
type Mount struct {
	Path     string // without the leading slash
	Pipeline string // gst-launch syntax, ending in payloaders pay0, pay1, ...
	Live     bool   // one shared pipeline for every client; else every client gets its own (VOD)
}

// GstServer is a gst-rtsp-server on 127.0.0.1 that counts the requests it
// receives.
type GstServer struct {
	Addr string // host:port

	mu   sync.Mutex
	reqs map[string]int // "METHOD path" → count
}

// StartGstServer starts gst-rtsp-server (testdata/gst-rtsp-server.py)
// serving mounts on a port it picks, and stops it when the test ends.
func StartGstServer(t testing.TB, mounts ...Mount) *GstServer {
	t.Helper()
	return StartGstServerMax(t, 0, mounts...)
}

// StartGstServerMax is StartGstServer with gst-rtsp-server's session pool
// holding at most maxSessions sessions at once (0: no limit): past it the
// server answers a SETUP with 503 Service Unavailable.
func StartGstServerMax(t testing.TB, maxSessions int, mounts ...Mount) *GstServer {
	t.Helper()
	args := []string{Testdata("gst-rtsp-server.py"), "--max-sessions", strconv.Itoa(maxSessions)}
	for _, m := range mounts {
		flag := "--vod"
		if m.Live {
			flag = "--live"
		}
		args = append(args, flag, m.Path+"="+m.Pipeline)
	}
	cmd := exec.Command("/usr/bin/python3", args...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe() // closing it stops the server
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gst-rtsp-server: %v", err)
	}
	s := &GstServer{reqs: map[string]int{}}
	ready := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		s.read(stdout, ready)
	}()
	exited := make(chan error, 1)
	go func() {
		<-read
		exited <- cmd.Wait()
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("gst-rtsp-server did not exit within 10 s of its stdin closing")
		}
	}
	t.Cleanup(stop)
	select {
	case port := <-ready:
		s.Addr = "127.0.0.1:" + port
	case <-read:
		stop()
		t.Fatalf("gst-rtsp-server exited before it was ready:\n%s", stderr.String())
	case <-time.After(20 * time.Second):
		stop()
		t.Fatalf("gst-rtsp-server not ready within 20 s:\n%s", stderr.String())
	}
	return s
}

// read follows the server's stdout: READY <port>, then REQ <method> <path>.
func (s *GstServer) read(r io.Reader, ready chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "READY":
			ready <- f[1]
		case len(f) == 3 && f[0] == "REQ":
			s.mu.Lock()
			s.reqs[f[1]+" "+f[2]]++
			s.mu.Unlock()
		}
	}
}

// URL is the rtsp URL of a mount.
func (s *GstServer) URL(path string) string { return fmt.Sprintf("rtsp://%s/%s", s.Addr, path) }

// Requests is how many requests of method (e.g. "PLAY") for path the server
// has received so far.
func (s *GstServer) Requests(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[method+" "+path]
}

// syncBuffer is a buffer that exec writes to from its own goroutine while
// the test may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
