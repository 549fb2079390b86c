//go:build linux

package store

import (
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

// TestValueLogWriteback: storing segments starts the kernel's writeback of
// the value log behind them, writebackEvery bytes at a time, so that a
// rotation finds little left to write, and asks for the pages ahead of
// them (writeback_linux.go).
func TestValueLogWriteback(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.Create(Manifest{Key: "wb", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	// About 24 MiB in segments of 256 KiB: under one value-log file.
	spec := streamSpec{fps: 25, gop: 50, pktsPerFrame: 16, size: 1300}
	for _, p := range synth(spec, 10*time.Minute)[:19000] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, si := range w.Manifest().Segments {
		stored += int64(si.Size)
	}
	// The store's goroutine starts what was queued.
	wb := &s.resident.wb
	testkit.Eventually(t, 10*time.Second, "queued writeback started", func() bool {
		wb.mu.Lock()
		defer wb.mu.Unlock()
		return len(wb.due) == 0
	})
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if len(wb.issued) != 1 {
		t.Fatalf("writeback started in %d value-log files, want 1: %v", len(wb.issued), wb.issued)
	}
	for path, off := range wb.issued {
		// The last segment is released (and written back) at the next seal,
		// and a start waits for writebackEvery bytes.
		if lo := stored - writebackEvery - 2*int64(DefaultSegmentBytes); off < lo || off > stored+64<<10 {
			t.Errorf("writeback of %s started below %d; %d bytes stored, want at least %d", path, off, stored, lo)
		}
		if off%pageSize != 0 {
			t.Errorf("writeback of %s ends at %d, not at a page boundary", path, off)
		}
		// Pages ahead of the writes were asked for, at least half a window.
		if ahead := wb.ahead[path]; ahead < stored+prefetchAhead/2-2*int64(DefaultSegmentBytes) || ahead%pageSize != 0 {
			t.Errorf("pages of %s asked for below %d; %d bytes stored", path, ahead, stored)
		}
	}
}
