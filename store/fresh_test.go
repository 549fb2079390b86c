package store

import (
	"errors"
	"testing"
	"time"
)

// TestSetFreshnessPersists: a revalidated recording's new freshness
// survives a reopen.
func TestSetFreshnessPersists(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	record(t, s, "k", synth(defaultSpec, time.Second), StateComplete)
	f := Freshness{LastModified: "Tue, 01 Dec 2026 12:00:00 GMT", CacheControl: "max-age=60", FetchedAt: time.Now().UTC().Truncate(time.Second)}
	if err := s.SetFreshness("k", f); err != nil {
		t.Fatal(err)
	}
	s = reopened(t, s, dir)
	m, err := s.Manifest("k")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Freshness.FetchedAt.Equal(f.FetchedAt) || m.Freshness.LastModified != f.LastModified || m.Freshness.CacheControl != f.CacheControl {
		t.Fatalf("freshness after reopen %+v, want %+v", m.Freshness, f)
	}
	if m.State != StateComplete || m.Packets == 0 {
		t.Fatalf("recording changed: %s, %d packets", m.State, m.Packets)
	}
}

// TestDeleteIdle: a recording a reader has open is not deleted (its reader
// reads on); once the reader is closed it is.
func TestDeleteIdle(t *testing.T) {
	s := memStore(t, Options{})
	pkts := synth(defaultSpec, time.Second)
	record(t, s, "k", pkts, StateComplete)
	r, err := s.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteIdle("k"); !errors.Is(err, ErrBusy) {
		t.Fatalf("DeleteIdle with a reader: %v, want ErrBusy", err)
	}
	checkPackets(t, readAll(t, r), pkts)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteIdle("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after DeleteIdle: %v, want ErrNotFound", err)
	}
	if err := s.DeleteIdle("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteIdle of nothing: %v, want ErrNotFound", err)
	}
}

// reopened closes s and opens the store in dir again, closed when the test
// ends.
func reopened(t *testing.T, s *Store, dir string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
