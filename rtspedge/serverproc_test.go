package rtspedge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/store"
)

// serverProcEnv makes the test binary a bare server process (for benchmarks
// that measure the server's CPU apart from the players'): the value is the
// media duration of the synthetic 2 Mbit/s recording "v" it serves.
const serverProcEnv = "RTSPEDGE_BENCH_SERVER"

// serverStoreDirEnv puts the server process's store on disk in that
// directory (default: in memory).
const serverStoreDirEnv = "RTSPEDGE_BENCH_STORE_DIR"

func TestMain(m *testing.M) {
	if d := os.Getenv(serverProcEnv); d != "" {
		if err := runServerProc(d); err != nil {
			fmt.Fprintln(os.Stderr, "server process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(interop.Main(m))
}

// benchLimits let every benchmark player connect from 127.0.0.1.
var benchLimits = Limits{MaxConns: 2000, MaxConnsPerAddr: 2000, MaxSessions: 2000, MaxSessionsPerAddr: 2000}

// runServerProc serves the recording until stdin closes; it prints
// "ADDR host:port" once listening.
func runServerProc(d string) error {
	dur, err := time.ParseDuration(d)
	if err != nil {
		return err
	}
	dir, opts := "", store.Options{InMemory: true, Logger: testkit.Logger()}
	if d := os.Getenv(serverStoreDirEnv); d != "" {
		dir, opts.InMemory = d, false // on disk, as a node's
	}
	st, err := store.Open(dir, opts)
	if err != nil {
		return err
	}
	if _, err := writeSynth(st, "v", spec2Mbps(dur)); err != nil {
		st.Close()
		return err
	}
	if dir != "" {
		// A node serving a cached recording, not one it just wrote at
		// hundreds of MB/s (a node fills in real time): open the store
		// again, its segment cache empty.
		if err := st.Close(); err != nil {
			return err
		}
		if st, err = store.Open(dir, opts); err != nil {
			return err
		}
	}
	defer st.Close()
	// Give what writing left to the OS, so that the RSS measured is the
	// serving's.
	debug.FreeOSMemory()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recs := &testRecordings{ctx: ctx, st: st, origins: map[string]string{}, errs: map[string]error{},
		filling: map[string]chan struct{}{}, fillErr: map[string]error{}}
	// The server's defaults, as a node has them: a TCP player is written to
	// directly (its socket buffers absorb a starved player for seconds), the
	// write queue serves UDP only.
	// UDP too, on a free pair of ports, for BenchmarkServe500PlayersUDP.
	s, err := NewServer(ServerConfig{Listen: "127.0.0.1:0", UDPRTPAddress: "127.0.0.1:0",
		Recordings: recs, Logger: testkit.Logger(), Limits: benchLimits})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// RTSPEDGE_BENCH_CPUPROFILE=file profiles the server process alone.
	stopProfile, err := testkit.ProfileCPU("RTSPEDGE_BENCH_CPUPROFILE")
	if err != nil {
		return err
	}
	defer stopProfile()
	fmt.Printf("ADDR %s\n", s.Addr())
	// Each line on stdin writes the heap profile to the file
	// RTSPEDGE_BENCH_HEAPPROFILE names, when it is set (heapProfile).
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if f := os.Getenv(heapProfileEnv); f != "" {
			if err := writeHeapProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "server process:", err)
			}
		}
	}
	cancel()
	return <-done
}

// heapProfileEnv names the file where the server process writes its heap
// profile when the benchmark asks (serverProc.heapProfile).
const heapProfileEnv = "RTSPEDGE_BENCH_HEAPPROFILE"

func writeHeapProfile(name string) error {
	runtime.GC()
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serverProc is a server in a child process.
type serverProc struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.Writer
}

// heapProfile asks the server process for its heap profile (written only
// when RTSPEDGE_BENCH_HEAPPROFILE is set).
func (p *serverProc) heapProfile(b *testing.B) {
	if _, err := io.WriteString(p.stdin, "heap\n"); err != nil {
		b.Fatal(err)
	}
}

func startServerProc(b *testing.B, dur time.Duration) *serverProc {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverProcEnv+"="+dur.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		b.Fatalf("server process: %q, %v", line, err)
	}
	return &serverProc{addr: addr, cmd: cmd, stdin: stdin}
}

// cpu is the CPU time (user + system) the server process used so far.
func (p *serverProc) cpu(b *testing.B) time.Duration {
	return testkit.ReadProc(b, p.cmd.Process.Pid).CPU
}
