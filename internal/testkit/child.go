package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Child is this test binary run again in a child process, to run a
// component as a program of its own: one whose crash must fail a test
// rather than kill the test binary, or whose heap or CPU is measured apart
// from the test's. The child's stdout comes line by line (Line), its stderr
// is kept (Stderr); it stops when its stdin closes (Stop), which also
// happens when the test binary dies, so a child never outlives its test.
type Child struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	lines    chan string
	stderr   Buffer
	exited   chan struct{}
	err      error // the child's exit, once exited is closed
	stopOnce sync.Once
}

// StartChild starts the test binary with -test.run=run and env added to
// the environment (the child's entry point, a test function or TestMain,
// recognises it there), and stops it (Stop) when the test ends, failed or
// not.
func StartChild(t testing.TB, run string, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	c := &Child{cmd: cmd, lines: make(chan string, 16), exited: make(chan struct{})}
	cmd.Stderr = &c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = stdin
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends with the child; Stop waits for it
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody asked for it: the test framework's PASS, say
			}
		}
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.Stop(t) })
	return c
}

// Line is the child's next stdout line, waited for at most within.
func (c *Child) Line(within time.Duration) (string, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case line := <-c.lines:
		return line, nil
	case <-c.exited:
		return "", fmt.Errorf("child process exited: %v", c.err)
	case <-timer.C:
		return "", fmt.Errorf("no line from the child process within %v", within)
	}
}

// Send writes line and a newline to the child's stdin.
func (c *Child) Send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

// Exited is closed once the child has exited; Err then says how.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Err is the child's exit error (nil: exit status 0); read it once Exited
// is closed.
func (c *Child) Err() error { return c.err }

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Stderr is what the child wrote to its stderr so far.
func (c *Child) Stderr() string { return c.stderr.String() }

// Stop closes the child's stdin and waits StopWithin for it to exit, then
// kills it. The test fails if the child had to be killed or did not exit
// with status 0 (with the crash or the end of its stderr). Only the first
// call does anything; the test's end makes one.
func (c *Child) Stop(t testing.TB) {
	t.Helper()
	c.stopOnce.Do(func() {
		_ = c.stdin.Close()
		timer := time.NewTimer(StopWithin)
		defer timer.Stop()
		select {
		case <-c.exited:
		case <-timer.C:
			_ = c.cmd.Process.Kill()
			<-c.exited
			t.Errorf("child process did not stop within %v of its stdin closing: killed", StopWithin)
		}
		if c.err != nil {
			t.Errorf("child process: %v\n%s", c.err, CrashReport(c.Stderr()))
		}
	})
}

// CrashReport is the head of a Go crash in a process's stderr s (the fatal
// error and the faulting goroutine) with what the process logged just
// before it, or the last 40 lines.
func CrashReport(s string) string {
	for _, mark := range []string{"fatal error", "unexpected fault", "SIGBUS", "panic:", "unexpected return pc"} {
		if i := strings.Index(s, mark); i >= 0 {
			return s[max(i-4000, 0):min(i+1500, len(s))]
		}
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-40, 0):], "\n")
}

// Buffer is a bytes buffer safe for concurrent writes and reads: a child
// process's stderr, a component's log.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
