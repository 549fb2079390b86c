package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestChunkRotAfterCheck: a segment that rots after a reader checked it
// whole (its chunk index is kept) is found damaged by the chunk's own
// CRC-32C: the reader gets ErrCorrupt, and every packet it got before is
// the one stored.
func TestChunkRotAfterCheck(t *testing.T) {
	t.Parallel()
	s := memStore(t, Options{SegmentBytes: 64 << 10, CacheBytes: -1})
	const key = "rtsp://origin.test/chunkrot"
	packets := synth(defaultSpec, 10*time.Second)
	record(t, s, key, packets, StateComplete)
	m, _ := s.Manifest(key)
	const bad = 3
	if len(m.Segments) <= bad {
		t.Fatalf("%d segments", len(m.Segments))
	}
	r, err := s.NewReader(key, m.Segments[bad].FirstKeyTT)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.cidx == nil || len(r.cidx.chunks) < 2 {
		t.Fatalf("reader of segment %d not by chunks (%v)", bad, r.cidx)
	}
	rot(t, s, key, bad) // in its last chunk
	byPN := map[uint64][]byte{}
	for _, p := range packets {
		byPN[p.PN] = p.RTP
	}
	for {
		p, err := r.Next(t.Context())
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read after rot: %v, want ErrCorrupt", err)
			}
			break
		}
		if r.Segment() > bad {
			t.Fatalf("read past the rotten segment %d", bad)
		}
		if !bytes.Equal(p.RTP, byPN[p.PN]) {
			t.Fatalf("packet pn %d differs from the one stored", p.PN)
		}
	}
}

// TestSegmentCacheBounds: decoded segments stay within their budget,
// oldest first, and leave segmentTTL after they came in even when used;
// chunk indexes are least recently used first.
func TestSegmentCacheBounds(t *testing.T) {
	seg := func() *segment { return &segment{raw: make([]byte, 1000)} }
	c := newSegmentCache(3500)
	now := time.Unix(1000, 0)
	c.segs.now = func() time.Time { return now }
	for i := range uint32(5) {
		c.add(segRef{1, i}, seg())
		now = now.Add(time.Second)
		if c.peek(segRef{1, 0}) == nil && i < 3 {
			t.Fatalf("segment 0 gone after %d adds", i+1)
		}
	}
	if c.segs.used > 3500 || c.segs.ll.Len() != 3 {
		t.Fatalf("%d bytes in %d segments, budget 3500", c.segs.used, c.segs.ll.Len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if got := c.peek(segRef{1, uint32(i)}) != nil; got != want {
			t.Errorf("segment %d cached: %v, want %v", i, got, want)
		}
	}
	now = now.Add(segmentTTL - 2*time.Second) // segment 2 came in TTL+ ago
	if c.peek(segRef{1, 2}) != nil || c.peek(segRef{1, 4}) == nil {
		t.Fatal("segment 2 outlived its TTL, or 4 left before it")
	}
	now = now.Add(time.Hour)
	c.expire()
	if c.segs.ll.Len() != 0 || c.segs.used != 0 {
		t.Fatalf("%d segments (%d bytes) after their TTL", c.segs.ll.Len(), c.segs.used)
	}

	ci := &chunkIndex{chunks: make([]chunk, 10)}
	per := ci.cost()
	for i := range uint32(indexCacheBytes/per + 10) {
		c.addIndex(segRef{2, i}, ci)
		if _, ok := c.index(segRef{2, 0}); !ok {
			t.Fatalf("index 0, used at every add, dropped after %d", i+1)
		}
	}
	if c.indexes.used > indexCacheBytes {
		t.Fatalf("indexes hold %d bytes, budget %d", c.indexes.used, indexCacheBytes)
	}
	c.dropFrom(2, 0)
	if c.indexes.ll.Len() != 0 {
		t.Fatal("dropFrom left indexes")
	}
}

// TestReleaseReusesChunks: a reader whose caller releases packets reads
// later chunks into the released buffers, never into one holding a packet
// the caller still holds; without Release nothing is reused.
func TestReleaseReusesChunks(t *testing.T) {
	t.Parallel()
	s := memStore(t, Options{SegmentBytes: 64 << 10, CacheBytes: -1, paced: true})
	const key = "rtsp://origin.test/release"
	packets := synth(defaultSpec, 10*time.Second)
	record(t, s, key, packets, StateComplete)
	for _, release := range []bool{false, true} {
		r, err := s.NewReader(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		const window = 20 // packets the caller holds
		var held []Packet
		starts := map[*byte]bool{} // chunk buffers seen, by their first byte
		reused := 0
		for i := 0; ; i++ {
			p, err := r.Next(t.Context())
			if err != nil {
				break
			}
			if !bytes.Equal(p.RTP, packets[i].RTP) {
				t.Fatalf("release %v: packet %d differs", release, i)
			}
			held = append(held, p)
			if len(held) > window {
				held = held[1:]
			}
			for j, h := range held {
				if !bytes.Equal(h.RTP, packets[i-len(held)+1+j].RTP) {
					t.Fatalf("release %v: a held packet was overwritten at packet %d", release, i)
				}
			}
			if r.pos == 1 && r.cidx != nil { // the first packet of a chunk
				b := &p.RTP[:1][0]
				if starts[b] {
					reused++
				}
				starts[b] = true
			}
			if release {
				r.Release(uint64(i+1) - uint64(len(held)))
			}
		}
		r.Close()
		if release && reused == 0 || !release && reused != 0 {
			t.Errorf("release %v: %d chunk buffers reused", release, reused)
		}
		if len(r.held) > window {
			t.Errorf("release %v: %d chunks held", release, len(r.held))
		}
	}
}

// TestOpenThenChunks: a reader that read part of the open segment goes on
// after it, without a repeat or a gap, when the segment is sealed and
// stored meanwhile and read by chunks (regression: it started the segment
// over, and a peer relaying the fill sent packets twice).
func TestOpenThenChunks(t *testing.T) {
	t.Parallel()
	s := memStore(t, Options{SegmentBytes: 64 << 10, CacheBytes: -1})
	pk := synth(defaultSpec, 3*time.Second)
	w, err := s.Create(Manifest{Key: "open", Tracks: avTracks()})
	if err != nil {
		t.Fatal(err)
	}
	const first = 10
	for _, p := range pk[:first] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.NewReader("open", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < first-3; i++ {
		if p, err := r.Next(t.Context()); err != nil || p.PN != pk[i].PN {
			t.Fatalf("packet %d: pn %d, %v", i, p.PN, err)
		}
	}
	for _, p := range pk[first:] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	for i := first - 3; i < len(pk); i++ {
		p, err := r.Next(t.Context())
		if err != nil || p.PN != pk[i].PN {
			t.Fatalf("packet %d: pn %d, %v; want pn %d", i, p.PN, err, pk[i].PN)
		}
	}
}

// TestReleasingReaderNeverBulk: a reader whose caller releases packets (a
// player's replay) reads by chunks however fast it reads (a player catching
// up after a stall); one that does not release reads in bulk once it read
// a segment much faster than real time. Segments of 256 KiB hold 2 s of
// the stream: one read within 250 ms (bulkRatio) suffices, which a reader
// starved on a loaded machine (the race detector, other packages' tests)
// did not manage for any of 20 segments of 0.5 s.
func TestReleasingReaderNeverBulk(t *testing.T) {
	t.Parallel()
	s := memStore(t, Options{SegmentBytes: 256 << 10, CacheBytes: -1})
	const key = "rtsp://origin.test/nobulk"
	record(t, s, key, synth(defaultSpec, 20*time.Second), StateComplete)
	for _, release := range []bool{false, true} {
		r, err := s.NewReader(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		bulk := false
		for n := uint64(1); ; n++ {
			if _, err := r.Next(t.Context()); err != nil {
				break
			}
			bulk = bulk || r.bulk
			if release {
				r.Release(n)
			}
		}
		r.Close()
		if bulk == release {
			t.Errorf("release %v: read in bulk %v", release, bulk)
		}
	}
}
