package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestListAndInfo(t *testing.T) {
	s := memStore(t, Options{SegmentBytes: 16 << 10})
	before := time.Now()
	pk := synth(defaultSpec, 3*time.Second)
	record(t, s, "b", pk, StateComplete)
	w, err := s.Create(Manifest{Key: "a", Tracks: avTracks(), Source: "peer-x"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(StatePartial)
	for i := 0; i < 2; i++ {
		r, err := s.NewReader("b", 0)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			defer r.Close()
		} else {
			_ = r.Close()
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Key != "a" || list[1].Key != "b" {
		t.Fatalf("list: %+v", list)
	}
	a, b := list[0], list[1]
	if a.State != StateFilling || !a.Filling || a.Source != "peer-x" || a.ID != StreamID("a") {
		t.Errorf("a: %+v", a)
	}
	var bytes uint64
	for _, p := range pk {
		bytes += uint64(len(p.RTP))
	}
	if b.State != StateComplete || b.Filling || b.Packets != uint64(len(pk)) || b.Bytes != bytes ||
		b.Duration != pk[len(pk)-1].TT || b.Hits != 2 || b.Readers != 1 || b.Segments < 5 ||
		b.Source != "origin" || b.Created.Before(before) || b.LastAccess.Before(b.Created) {
		t.Errorf("b: %+v", b)
	}
	if err := s.SetPinned("b", true); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info("b"); err != nil || !info.Pinned {
		t.Fatalf("Info after pin: %+v %v", info, err)
	}
	if _, err := s.Info("zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Info of unknown: %v", err)
	}
}

func TestDelete(t *testing.T) {
	var mu sync.Mutex
	var evicted []string
	s := memStore(t, Options{SegmentBytes: 16 << 10, OnEvict: func(k string) {
		mu.Lock()
		evicted = append(evicted, k)
		mu.Unlock()
	}})
	pk := synth(defaultSpec, 3*time.Second)
	record(t, s, "d", pk, StateComplete)
	w, err := s.Create(Manifest{Key: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("busy"); !errors.Is(err, ErrBusy) {
		t.Fatalf("delete with writer: %v", err)
	}
	_ = w.Finish(StatePartial)
	r, err := s.NewReader("d", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.Delete("d"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest("d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	// The reader may finish the segment it holds, then it fails.
	for {
		_, err := r.Next(context.Background())
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("reader of a deleted recording: %v", err)
		}
	}
	if used, _ := s.Usage(); used != 0 {
		t.Fatalf("usage %d after deleting everything with data", used)
	}
	mu.Lock()
	if len(evicted) != 1 || evicted[0] != "d" {
		t.Fatalf("OnEvict: %v", evicted)
	}
	mu.Unlock()
	// No keys are left behind, and the key can be recorded again.
	if n := countKeys(t, s, pfxSeg) + countKeys(t, s, pfxInfo) + countKeys(t, s, pfxTomb); n != 0 {
		t.Fatalf("%d keys left", n)
	}
	record(t, s, "d", pk[:10], StateComplete)
	r2, err := s.NewReader("d", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	checkPackets(t, readAll(t, r2), pk[:10])
}

// TestQuota: least-recently-used first; never a recording with a writer or
// readers; never a pinned one; OnEvict for each.
func TestQuota(t *testing.T) {
	evicted := make(chan string, 10)
	s := memStore(t, Options{SegmentBytes: 16 << 10, OnEvict: func(k string) { evicted <- k }})
	pk := synth(defaultSpec, 2*time.Second)
	for _, k := range []string{"pinned", "old", "read", "new"} {
		record(t, s, k, pk, StateComplete)
	}
	one := s.recs["old"].hdr.StoredBytes
	r, err := s.NewReader("read", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Access order: pinned (oldest), old, read, new (most recent).
	base := time.Now().Add(-time.Hour)
	for i, k := range []string{"pinned", "old", "read", "new"} {
		rec := s.recs[k]
		rec.mu.Lock()
		rec.hdr.LastAccess = base.Add(time.Duration(i) * time.Minute)
		rec.mu.Unlock()
	}
	if err := s.SetPinned("pinned", true); err != nil {
		t.Fatal(err)
	}
	// Lower the quota to 2.5 recordings: two must go. Candidates by age:
	// pinned (never), old, read (has a reader), new.
	s.mu.Lock()
	s.opts.MaxBytes = 3*one - one/2
	s.mu.Unlock()

	// A filling recording is not evicted either, and counts: once nothing
	// evictable could make room for its next segment, the segment is
	// refused rather than overrunning the quota (issue 13).
	w, err := s.Create(Manifest{Key: "filling", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	var appendErr error
	for _, p := range pk {
		if appendErr = w.Append(p); appendErr != nil {
			break
		}
	}
	if !errors.Is(appendErr, ErrNoSpace) {
		t.Fatalf("fill over a quota of unevictable recordings: %v, want ErrNoSpace", appendErr)
	}
	got := []string{<-evicted, <-evicted}
	if got[0] != "old" || got[1] != "new" {
		t.Fatalf("evicted %v, want [old new]", got)
	}
	for _, k := range []string{"pinned", "read", "filling"} {
		if _, err := s.Info(k); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if used, max := s.Usage(); used > max {
		t.Fatalf("over quota: used %d max %d", used, max)
	}
	// Once the writer finishes (partial: a segment was refused), it is
	// evictable, unlike the pinned one and the one being read.
	if err := w.Finish(StateComplete); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("finish after a refused segment: %v", err)
	}
	s.mu.Lock()
	s.opts.MaxBytes = s.used - 1
	s.mu.Unlock()
	s.kickEviction()
	if k := <-evicted; k != "filling" {
		t.Fatalf("evicted %s, want filling (the only evictable one)", k)
	}
	for _, k := range []string{"pinned", "read"} {
		if _, err := s.Info(k); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
}

func countKeys(t testing.TB, s *Store, pfx byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *badgerTxn) error {
		it := txn.NewIterator(badgerIterOpts([]byte{pfx, '/'}))
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
