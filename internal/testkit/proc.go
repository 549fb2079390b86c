package testkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Proc is what Linux's /proc says of a process: its resident memory now and
// at its peak (VmRSS, VmHWM, in MiB), the part of RSS that is mapped files
// (RssFile: the executable, Badger's memory-mapped tables and value log),
// the CPU time (user + system) it used so far, and its write system calls
// so far (syscw of /proc/<pid>/io: write and writev, on sockets too).
type Proc struct {
	RSS, PeakRSS, FileRSS float64
	CPU                   time.Duration
	Writes                int64
}

// ReadProc reads /proc/<pid>/status and /proc/<pid>/stat.
func ReadProc(tb testing.TB, pid int) Proc {
	tb.Helper()
	var p Proc
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		for name, dst := range map[string]*float64{"VmRSS:": &p.RSS, "VmHWM:": &p.PeakRSS, "RssFile:": &p.FileRSS} {
			if v, ok := strings.CutPrefix(line, name); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				if err != nil {
					tb.Fatalf("/proc/%d/status %s %q: %v", pid, name, v, err)
				}
				*dst = kb / 1024
			}
		}
	}
	raw, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// After the parenthesised command: utime and stime are fields 14 and 15.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("parse /proc/%d/stat: %q", pid, raw)
	}
	const ticks = 100 // USER_HZ on Linux
	p.CPU = time.Duration(ut+st) * time.Second / ticks
	raw, err = os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			if p.Writes, err = strconv.ParseInt(v, 10, 64); err != nil {
				tb.Fatalf("/proc/%d/io syscw %q: %v", pid, v, err)
			}
		}
	}
	return p
}
