package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// rot flips one byte of stored segment idx of key in Badger, as a disk
// that rots would (the store's own write path is bypassed).
func rot(t *testing.T, s *Store, key string, idx uint32) {
	t.Helper()
	rec, err := s.lookup(key)
	if err != nil {
		t.Fatal(err)
	}
	k := segKey(pfxSeg, rec.seq, idx)
	err = s.update(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)-7] ^= 0x20
		return txn.Set(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDamagedSegmentEndsReadAndCutsRecording(t *testing.T) {
	t.Parallel()
	s := memStore(t, Options{SegmentBytes: 32 << 10, CacheBytes: -1})
	key := "rtsp://origin.test/rot"
	packets := synth(defaultSpec, 10*time.Second)
	record(t, s, key, packets, StateComplete)
	m, _ := s.Manifest(key)
	if len(m.Segments) < 6 {
		t.Fatalf("%d segments", len(m.Segments))
	}
	const bad = 4
	rot(t, s, key, bad)

	r, err := s.NewReader(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	var readErr error
	for {
		if _, readErr = r.Next(context.Background()); readErr != nil {
			break
		}
		n++
	}
	if !errors.Is(readErr, ErrCorrupt) {
		t.Fatalf("read past a rotten segment: %v after %d packets, want ErrCorrupt", readErr, n)
	}
	var before uint64
	for _, si := range m.Segments[:bad] {
		before += uint64(si.Packets)
	}
	if uint64(n) != before {
		t.Fatalf("read %d packets, want the %d before the rotten segment", n, before)
	}
	got, err := s.Manifest(key)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StatePartial || len(got.Segments) != bad || got.NextSegment() != bad || got.EndSeal != nil {
		t.Fatalf("after the damage: state %s, %d segments; want partial with %d", got.State, len(got.Segments), bad)
	}
	if _, _, err := s.Segment(key, bad); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the rotten segment is still served: %v", err)
	}

	// The repair: the next fill resumes at the cut and the recording is
	// whole again.
	w, err := s.Resume(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packets[before:] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	r2, err := s.NewReader(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	checkPackets(t, readAll(t, r2), packets)
}

// TestSegmentInto: a fill server's reads go into its buffer, the same bytes
// as Segment's, and a rotten segment is refused (and the recording cut), as
// every read from disk.
func TestSegmentInto(t *testing.T) {
	t.Parallel()
	s := memStore(t, Options{SegmentBytes: 32 << 10, CacheBytes: -1})
	key := "rtsp://origin.test/into"
	record(t, s, key, synth(defaultSpec, 10*time.Second), StateComplete)
	m, _ := s.Manifest(key)
	if len(m.Segments) < 4 {
		t.Fatalf("%d segments", len(m.Segments))
	}
	var buf []byte
	for _, si := range m.Segments[:3] {
		want, wantInfo, err := s.SegmentSealed(key, si.Index)
		if err != nil {
			t.Fatal(err)
		}
		got, info, err := s.SegmentInto(key, si.Index, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || info.Hash != wantInfo.Hash || info.Index != si.Index {
			t.Fatalf("segment %d: %d bytes, info %d; want %d bytes, the stored info", si.Index, len(got), info.Index, len(want))
		}
		if &got[0] != &buf[0] {
			t.Fatalf("segment %d was not read into the buffer", si.Index)
		}
	}
	if _, _, err := s.SegmentInto(key, m.Segments[len(m.Segments)-1].Index+1, &buf); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a segment past the end: %v, want ErrNotFound", err)
	}

	const bad = 2
	rot(t, s, key, bad)
	if _, _, err := s.SegmentInto(key, bad, &buf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a rotten segment was served: %v, want ErrCorrupt", err)
	}
	if got, _ := s.Manifest(key); got.State != StatePartial || len(got.Segments) != bad {
		t.Fatalf("after the damage: state %s, %d segments; want partial with %d", got.State, len(got.Segments), bad)
	}
}
