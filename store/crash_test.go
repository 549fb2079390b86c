package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

const crashEnv = "STORE_CRASH_HELPER_DIR"

// TestHelperProcess is the child of TestCrashRecovery: it stores a complete
// recording, then fills another one forever, printing the number of sealed
// segments after each seal, until it is killed. Without the environment
// variable it does nothing.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		return
	}
	s, err := Open(dir, Options{SegmentBytes: 32 << 10})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	pk := synth(defaultSpec, 10*time.Second)
	record(t, s, "done", pk, StateComplete)
	w, err := s.Create(Manifest{Key: "crash", Tracks: avTracks()})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	sealed := 0
	var pn uint64
	for f := 0; ; f++ {
		for _, p := range pk {
			p.PN = pn
			p.TT += time.Duration(f) * 10 * time.Second
			pn++
			if err := w.Append(p); err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
			if n := len(w.Manifest().Segments); n != sealed {
				sealed = n
				fmt.Println("sealed", n)
			}
		}
	}
}

// TestCrashRecovery kills a process while it fills a recording and checks
// that reopening finds it partial with every sealed segment intact, and the
// complete recording untouched.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	reported := crashChild(t, dir, 20)

	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.Manifest("crash")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StatePartial {
		t.Fatalf("state after crash %s, want partial", m.State)
	}
	if len(m.Segments) < reported {
		t.Fatalf("%d segments after crash, child had reported %d sealed", len(m.Segments), reported)
	}
	var packets uint64
	for i, si := range m.Segments {
		data, h, err := s.Segment("crash", si.Index)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if h != si.Hash || sha256.Sum256(data) != si.Hash {
			t.Fatalf("segment %d: hash mismatch", i)
		}
		packets += uint64(si.Packets)
	}
	if packets != m.Packets {
		t.Fatalf("manifest counts %d packets, segments hold %d", m.Packets, packets)
	}
	r, err := s.NewReader("crash", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	_ = r.Close()
	for i, p := range got {
		if p.PN != uint64(i) {
			t.Fatalf("packet %d has pn %d", i, p.PN)
		}
	}
	if uint64(len(got)) != m.Packets {
		t.Fatalf("read %d packets, manifest says %d", len(got), m.Packets)
	}
	done, err := s.Manifest("done")
	if err != nil || done.State != StateComplete {
		t.Fatalf("complete recording after crash: %v %v", done.State, err)
	}
	r, err = s.NewReader("done", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkPackets(t, readAll(t, r), synth(defaultSpec, 10*time.Second))

	// The partial recording can be resumed where it stopped.
	w, err := s.Resume("crash")
	if err != nil {
		t.Fatal(err)
	}
	if _, pn, ok := w.Last(); !ok || pn != uint64(len(got)-1) {
		t.Fatalf("Last after crash: %d %v", pn, ok)
	}
	if err := w.Finish(StatePartial); err != nil {
		t.Fatal(err)
	}
}

// TestReopen: recordings, access statistics and pins survive Close/Open, and
// a recording whose writer never finished becomes partial.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	pk := synth(defaultSpec, 3*time.Second)
	record(t, s, "c", pk, StateComplete)
	r, err := s.NewReader("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	if err := s.SetPinned("c", true); err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(Manifest{Key: "open", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pk {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(pk[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := s.Info("c")
	if err != nil || info.Hits != 1 || !info.Pinned || info.State != StateComplete {
		t.Fatalf("after reopen: %+v %v", info, err)
	}
	if info, _ := s.Info("open"); info.State != StatePartial || info.Segments == 0 {
		t.Fatalf("unfinished recording after reopen: %+v", info)
	}
	r, err = s.NewReader("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkPackets(t, readAll(t, r), pk)
	if used, _ := s.Usage(); used == 0 {
		t.Fatal("usage not restored")
	}
}

// TestDamagedStore: a damaged segment or manifest gives an error naming the
// key and segment, never a panic.
func TestDamagedStore(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	pk := synth(defaultSpec, 3*time.Second)
	record(t, s, "rtsp://h:554/seg", pk, StateComplete)
	record(t, s, "rtsp://h:554/man", pk, StateComplete)
	seq := s.recs["rtsp://h:554/seg"].seq
	manSeq := s.recs["rtsp://h:554/man"].seq
	data, _, err := s.Segment("rtsp://h:554/seg", 2)
	if err != nil {
		t.Fatal(err)
	}
	binary := append([]byte(nil), data...)
	binary[9] = 0xff // count far beyond what the bytes hold
	s.flushAll()     // so that Close does not rewrite the header damaged below
	if err := s.db.Update(func(txn *badgerTxn) error {
		if err := txn.Set(segKey(pfxSeg, seq, 2), binary); err != nil {
			return err
		}
		return txn.Set(headerKey("rtsp://h:554/man"), []byte(`{"v":1,"manifest":{"key":"rtsp://h:554/man","state":"bogus"}}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.NewReader("rtsp://h:554/seg", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		_, err = r.Next(context.Background())
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "segment 2 of rtsp://h:554/seg") {
		t.Fatalf("damaged segment: %v", err)
	}
	_, err = s.Manifest("rtsp://h:554/man")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), StreamID("rtsp://h:554/man")) {
		t.Fatalf("damaged manifest: %v", err)
	}
	// The damaged recording's segments keep their sequence number: a new
	// recording must not write over them.
	w, err := s.Create(Manifest{Key: "rtsp://h:554/new"})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Finish(StatePartial)
	if got := s.recs["rtsp://h:554/new"].seq; got == manSeq || got == seq {
		t.Fatalf("new recording reuses sequence %d", got)
	}
	if err := s.Delete("rtsp://h:554/man"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest("rtsp://h:554/man"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after deleting the damaged manifest: %v", err)
	}
}

// crashChild runs TestHelperProcess on dir and kills it (SIGKILL) once it
// reported n sealed segments; it returns how many it reported.
func crashChild(t *testing.T, dir string, n int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	reported := 0
	for reported < n && sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatal("child:", line)
		}
		fmt.Sscanf(line, "sealed %d", &reported)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if reported < n {
		t.Fatalf("child reported only %d sealed segments (%v)", reported, sc.Err())
	}
	return reported
}

// TestFullDiskAfterCrash: a store killed mid-fill leaves a write-ahead log
// that Badger cannot replay read-only. Opened with the disk full, the store
// starts offline (empty, writing nothing) instead of failing; with space
// back it opens read-write and finds the interrupted fill partial.
func TestFullDiskAfterCrash(t *testing.T) {
	dir := t.TempDir()
	crashChild(t, dir, 5)
	fs := &fakeFree{}
	s, err := Open(dir, Options{MinFree: MinMinFree, freeSpace: fs.free})
	if err != nil {
		t.Fatalf("open after a crash with a full disk: %v", err)
	}
	defer s.Close()
	if st := s.Space(); !st.ReadOnly || st.Storing {
		t.Fatalf("space state: %+v", st)
	}
	s.dbMu.RLock()
	offline := s.db == nil
	s.dbMu.RUnlock()
	if !offline {
		t.Fatal("Badger opened read-only over a write-ahead log it cannot replay; the test expects it offline")
	}
	if _, err := s.Create(Manifest{Key: "new", Tracks: avTracks()}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("create with a full disk: %v", err)
	}
	fs.n.Store(1 << 30)
	testkit.Eventually(t, 20*time.Second, "the store to open read-write", s.Storing)
	m, err := s.Manifest("crash")
	if err != nil || m.State != StatePartial {
		t.Fatalf("interrupted fill after reopening: %v %v", m.State, err)
	}
	if done, err := s.Manifest("done"); err != nil || done.State != StateComplete {
		t.Fatalf("complete recording after reopening: %v %v", done.State, err)
	}
}
