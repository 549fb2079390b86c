package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	badger "github.com/dgraph-io/badger/v4"
)

// Reading by chunks (issue 15). A Reader entering a sealed segment that
// nobody holds decoded (not the writer's pending segment, not in the segment
// cache) and that fewer than shareReaders readers are in does not copy the
// segment: it copies the next chunks of its records that fit in readBytes
// (16 KiB; chunks are at most chunkBytes) with one read from the value-log
// file (valueLogMaps.copyOut), and decodes them; a caller that releases
// packets (Reader.Release: the replay) gets its next read in a buffer of
// readBufs, where released buffers go. Players at different places of a
// long recording then hold a read buffer each (the one their next packets
// are in) instead of a whole segment (256 KiB); the
// next reader to enter a segment that shareReaders readers are
// in loads it decoded into the segment cache, where all share it (a reader
// by chunks moves to the decoded segment at its next chunk). A reader that
// reads much faster than real time (a peer's fill, a copy: it read its last
// segment in under 1/bulkRatio of its media time) reads the next segment
// whole instead, decoded for itself: it holds it briefly, and whole reads
// cost less than chunks. A store in memory (Badger's, as the relay
// store's) shares every segment decoded: Badger copies a value in memory
// whole at every read, so a chunk of 16 KiB cost a copy of its whole
// segment. A reader whose caller releases packets (a
// player's replay) never does: it reads fast only to catch up after a
// stall, and 500 players catching up on a loaded server each copied whole
// segments.
//
// Checking (damage.go): the first read of a segment checks it whole (in a
// scratch buffer), against its CRC-32C or SHA-256 and then by decoding it, and keeps
// each chunk's byte range, packets and CRC-32C in a chunk index (the segment
// cache keeps indexes, indexCacheBytes at most; the reader keeps its own).
// A chunk's copy is checked against its CRC-32C before any of its bytes is
// returned, so no byte reaches a player unchecked, and a segment changed on
// disk since it was checked is found damaged like one that fails its check.
//
// Every stored read and every segment write hands the value log's pages it
// touched back to the kernel (valueLogMaps.release): they stay in the page
// cache, out of the process's resident memory.

// chunkBytes bounds a chunk, the unit its CRC-32C checks: whole records, so
// one larger record (a packet is at most MaxPacketBytes) is a chunk of its
// own. What a reader holds and how often it reads are readBytes'.
const chunkBytes = 8 << 10

// shareReaders: a segment this many readers read by chunks is loaded
// decoded for the next (about 265 KiB for a 256 KiB segment, where a reader
// by chunks holds two or three chunks; sharing also saves each reader its
// reads).
const shareReaders = 6

// bulkRatio: see "Reading by chunks".
const bulkRatio = 8

// chunk is a run of whole records of an encoded segment.
type chunk struct {
	off, end     uint32 // byte range in the segment
	first, count uint32 // its packets: indexes in the segment
	crc          uint32 // CRC-32C of its bytes
}

// chunkIndex is a checked segment's chunks.
type chunkIndex struct {
	size   int // the segment's encoded length
	chunks []chunk
	// Where the segment's bytes are in a value-log file, when a read
	// found them there: chunks are read from it without Badger (a lookup
	// and the entry's header each). A failed read forgets it.
	loc atomic.Pointer[valueLoc]
}

// valueLoc is where a value starts in a value-log file (raw: f's, for
// readCached).
type valueLoc struct {
	f   *os.File
	raw syscall.RawConn
	off int64
}

func (ci *chunkIndex) cost() int64 { return 128 + 20*int64(len(ci.chunks)) }

// chunkOf is the chunk holding packet i.
func (ci *chunkIndex) chunkOf(i int) int {
	for k := range ci.chunks {
		if c := &ci.chunks[k]; i < int(c.first+c.count) {
			return k
		}
	}
	return len(ci.chunks) - 1
}

// indexSegment decodes data (as decodeSegment) and cuts its records into
// chunks.
func indexSegment(data []byte) (uint32, []Packet, *chunkIndex, error) {
	var offs []uint32
	index, packets, err := decodeSegmentAt(data, &offs)
	if err != nil {
		return 0, nil, nil, err
	}
	ci := &chunkIndex{size: len(data)}
	for i := 0; i < len(packets); {
		j := i + 1
		for j < len(packets) && offs[j+1]-offs[i] <= chunkBytes {
			j++
		}
		ci.chunks = append(ci.chunks, chunk{off: offs[i], end: offs[j], first: uint32(i), count: uint32(j - i),
			crc: crc32.Checksum(data[offs[i]:offs[j]], castagnoli)})
		i = j
	}
	return index, packets, ci, nil
}

// storedSegment copies part of stored segment idx of rec: want, given the
// segment's size, says where to copy from (off) and into (buf). The copy
// comes from the value-log file, or from Badger's mapping of it
// (valueLogMaps.copyOut), so the caller checks its own bytes.
func (s *Store) storedSegment(rec *recording, idx uint32, want func(size int) (buf []byte, off int, err error)) (*valueLoc, error) {
	var loc *valueLoc
	err := s.withDB(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(segKey(pfxSeg, rec.seq, idx))
			if err != nil {
				return err
			}
			if item.ValueSize() > MaxSegmentBytes {
				return corruptf("%d bytes", item.ValueSize())
			}
			return item.Value(func(v []byte) error {
				buf, off, err := want(len(v))
				if err == nil {
					loc = s.resident.copyOut(buf, v, off)
				}
				return err
			})
		})
	})
	s.loads.Add(1)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, s.missingSegment(rec, idx)
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			s.damaged(rec, idx, err)
		}
		return nil, fmt.Errorf("segment %d of %s: %w", idx, rec.key, err)
	}
	return loc, nil
}

// wholeSegment reads stored segment idx of rec into a scratch buffer
// (fresh when fresh), checks it (checkStored; without its chunk index,
// ci nil, when fresh: a decoded segment is not read by chunks) and runs fn
// on its packets, which alias the buffer; a scratch buffer is used again
// after fn.
func (s *Store) wholeSegment(rec *recording, idx uint32, fresh bool, fn func(raw []byte, pk []Packet, ci *chunkIndex)) error {
	var scratch []byte
	if !fresh {
		scratch = <-segScratch
		defer func() {
			if cap(scratch) > maxScratch {
				scratch = nil
			}
			segScratch <- scratch
		}()
	}
	var raw []byte
	loc, err := s.storedSegment(rec, idx, func(size int) ([]byte, int, error) {
		switch {
		case fresh:
			raw = make([]byte, size)
		case cap(scratch) < size:
			scratch = make([]byte, size)
			raw = scratch
		default:
			raw = scratch[:size]
		}
		return raw, 0, nil
	})
	if err != nil {
		return err
	}
	pk, ci, err := s.checkStored(rec, idx, raw, !fresh)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			s.damaged(rec, idx, err)
		}
		return fmt.Errorf("segment %d of %s: %w", idx, rec.key, err)
	}
	if ci != nil {
		ci.loc.Store(loc)
	}
	fn(raw, pk, ci)
	return nil
}

// segScratch holds the buffers whole segments are checked in for seeks and
// chunk indexes: a few, so that 500 players starting at once wait a moment
// for one instead of each allocating a segment (the heap would grow by
// that much, and keep it).
var segScratch = func() chan []byte {
	c := make(chan []byte, 4)
	for range cap(c) {
		c <- nil
	}
	return c
}()

// maxScratch: larger scratch buffers are left to the garbage collector.
const maxScratch = 1 << 20

// missingSegment is the error for segment idx of rec not in Badger.
func (s *Store) missingSegment(rec *recording, idx uint32) error {
	rec.mu.Lock()
	// A live window drops segments as new ones seal; the header may not
	// show the drop yet while its commit completes.
	behind := idx < rec.hdr.FirstIndex || rec.hdr.M.Live
	gone := rec.deleted
	rec.mu.Unlock()
	switch {
	case behind:
		return fmt.Errorf("segment %d of %s: %w", idx, rec.key, ErrBehindWindow)
	case gone:
		return fmt.Errorf("segment %d of %s: %w", idx, rec.key, ErrNotFound)
	}
	return fmt.Errorf("segment %d of %s: %w: missing", idx, rec.key, ErrCorrupt)
}

// checkStored checks v, read from disk as segment idx of rec: its checksum,
// then its decoding (the packets alias v) and index; with index, it also
// indexes its chunks.
func (s *Store) checkStored(rec *recording, idx uint32, v []byte, index bool) ([]Packet, *chunkIndex, error) {
	if err := s.verifySegment(rec, idx, v); err != nil {
		return nil, nil, err
	}
	var got uint32
	var packets []Packet
	var ci *chunkIndex
	var err error
	if index {
		got, packets, ci, err = indexSegment(v)
	} else {
		got, packets, err = decodeSegment(v)
	}
	if err == nil && got != idx {
		err = corruptf("holds index %d", got)
	}
	return packets, ci, err
}

// heldSegment is segment idx of rec decoded when the writer (its commit in
// flight) or the segment cache holds it, else nil.
func (s *Store) heldSegment(rec *recording, idx uint32) *segment {
	if sg := rec.lendPending(idx); sg != nil {
		return sg
	}
	return s.cache.share(segRef{rec.seq, idx})
}

// lendPending is the writer's pending segment (its commit in flight) when
// it is segment idx, marked lent (Writer.SetSpare), else nil.
func (rec *recording) lendPending(idx uint32) *segment {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.pending == nil || rec.pendingInfo.Index != idx {
		return nil
	}
	rec.pending.lent = true
	return rec.pending
}

// segmentIndex is the chunk index of sealed segment idx of rec, from the
// cache or by checking the stored segment whole.
func (s *Store) segmentIndex(rec *recording, idx uint32) (*chunkIndex, error) {
	ref := segRef{rec.seq, idx}
	if ci, ok := s.cache.index(ref); ok {
		return ci, nil
	}
	var ci *chunkIndex
	err := s.wholeSegment(rec, idx, false, func(_ []byte, _ []Packet, c *chunkIndex) { ci = c })
	if err != nil {
		return nil, err
	}
	s.cache.addIndex(ref, ci)
	return ci, nil
}

// enterSegment is how a reader reads sealed segment idx of rec: decoded
// when it is held, or when shareReaders readers are in it or the store is
// in memory (loaded into the segment cache to share), else by chunks (ci).
func (s *Store) enterSegment(rec *recording, idx uint32) (*segment, *chunkIndex, error) {
	if sg := s.heldSegment(rec, idx); sg != nil {
		return sg, nil, nil
	}
	ref := segRef{rec.seq, idx}
	if s.cache.shares() && (s.opts.InMemory || s.cache.readersIn(ref) >= shareReaders) {
		sg, err := s.segment(rec, idx)
		return sg, nil, err
	}
	ci, err := s.segmentIndex(rec, idx)
	return nil, ci, err
}

// readChunks appends the packets of chunk k of segment idx of rec (indexed
// as ci), and of the chunks after it that fit in readBytes with it, to pk,
// and returns how many chunks it read. Their RTP bytes are a copy, made
// with one read, in buf when it is large enough (a buffer the reader's
// caller released, or one from readBufs), else in a new one; each chunk is
// checked against its CRC-32C before any of it is returned.
func (s *Store) readChunks(rec *recording, idx uint32, ci *chunkIndex, k int, pk []Packet, buf []byte) ([]Packet, []byte, int, error) {
	first := ci.chunks[k]
	m := 1
	for k+m < len(ci.chunks) && ci.chunks[k+m].end-first.off <= readBytes {
		m++
	}
	run := ci.chunks[k : k+m]
	n := int(run[m-1].end - first.off)
	if cap(buf) >= n {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if loc := ci.loc.Load(); loc != nil {
		got, err := readCached(loc.f, loc.raw, buf, loc.off+int64(first.off))
		if err == nil && got == len(buf) && runMatches(buf, run) == -1 {
			s.loads.Add(1)
			pk, err := decodeRun(buf, run, pk)
			return pk, buf, m, err
		}
		// The file is gone (value-log GC moved the segment) or the read
		// failed: read through Badger, which says where it is now.
		ci.loc.CompareAndSwap(loc, nil)
	}
	loc, err := s.storedSegment(rec, idx, func(size int) ([]byte, int, error) {
		if size != ci.size {
			return nil, 0, corruptf("%d bytes, %d when checked", size, ci.size)
		}
		return buf, int(first.off), nil
	})
	if err != nil {
		return pk, nil, 0, err
	}
	if bad := runMatches(buf, run); bad >= 0 {
		c := run[bad]
		err := corruptf("chunk %d (bytes %d to %d) does not match its CRC-32C", k+bad, c.off, c.end)
		s.damaged(rec, idx, err)
		return pk, nil, 0, fmt.Errorf("segment %d of %s: %w", idx, rec.key, err)
	}
	ci.loc.Store(loc)
	pk, err = decodeRun(buf, run, pk)
	return pk, buf, m, err
}

// runMatches checks buf, the bytes of the consecutive chunks run, against
// their CRC-32Cs: the index in run of the first that does not match, or -1.
func runMatches(buf []byte, run []chunk) int {
	base := run[0].off
	for i, c := range run {
		if crc32.Checksum(buf[c.off-base:c.end-base], castagnoli) != c.crc {
			return i
		}
	}
	return -1
}

// decodeRun appends the packets of the consecutive chunks run, their bytes
// in buf, to pk.
func decodeRun(buf []byte, run []chunk, pk []Packet) ([]Packet, error) {
	var n uint32
	for _, c := range run {
		n += c.count
	}
	return decodeChunk(buf, chunk{count: n}, pk)
}

// readBytes bounds one read of chunks (readChunks): the chunks that fit in
// it, whole, are read with one pread and kept in one buffer. Measured with
// 500 players spread over a 10-minute 2 Mbit/s recording
// (BenchmarkServe500Spread, load average 5–8): one 8 KiB chunk a read, in
// a buffer allocated when the reader had no spare (a batch of 80 ms is
// about 20 KiB: two or three reads), spent a quarter of the server's CPU
// in preads and allocation, 2.9–3.5 µs a packet; 32 KiB reads from shared
// buffers 1.9–2.6 µs, and 16 KiB the same (2.1 µs, two runs of each
// side by side) for half the memory a player holds.
const readBytes = 16 << 10

// readBufs holds read buffers of readBytes that readers' callers released
// (Reader.Release), for any reader's next read: a reader between two
// batches holds the buffer its next packets are in, and no spare. A player
// that wakes reads its next buffer before it releases the one it sent, so
// a few free buffers serve every reader of a busy store; beyond
// maxFreeReadBufs they are left to the garbage collector. (A sync.Pool
// would drop them all at every collection, and a store of players spread
// over long recordings then allocated them again, which made collections
// more frequent.)
var readBufs struct {
	mu   sync.Mutex
	free []*[readBytes]byte
}

const maxFreeReadBufs = 64

func getReadBuf() []byte {
	readBufs.mu.Lock()
	if n := len(readBufs.free); n > 0 {
		b := readBufs.free[n-1]
		readBufs.free[n-1] = nil
		readBufs.free = readBufs.free[:n-1]
		readBufs.mu.Unlock()
		return b[:]
	}
	readBufs.mu.Unlock()
	return new([readBytes]byte)[:]
}

// putReadBuf gives buf to readBufs when it came from there.
func putReadBuf(buf []byte) {
	if cap(buf) != readBytes {
		return
	}
	readBufs.mu.Lock()
	if len(readBufs.free) < maxFreeReadBufs {
		readBufs.free = append(readBufs.free, (*[readBytes]byte)(buf[:readBytes]))
	}
	readBufs.mu.Unlock()
}

// decodeChunk appends the packets of chunk c, its bytes in buf, to pk.
func decodeChunk(buf []byte, c chunk, pk []Packet) ([]Packet, error) {
	for range c.count {
		p, rest, err := decodeRecord(buf)
		if err != nil { // cannot be: the bytes are those decoded when checked
			return pk, err
		}
		pk, buf = append(pk, p), rest
	}
	return pk, nil
}

// seekIn runs pick on the packets of sealed segment idx of rec and returns
// the position of the packet it picked (pos -1: none), with how to read
// on: the decoded segment when one is held, else by chunks. pick must not
// keep pk: a segment not held is decoded in a buffer used again.
func (s *Store) seekIn(rec *recording, idx uint32, pick func(pk []Packet) int) (position, error) {
	sg := s.heldSegment(rec, idx)
	ref := segRef{rec.seq, idx}
	if sg == nil && s.cache.shares() && (s.opts.InMemory || s.cache.readersIn(ref) >= shareReaders) {
		var err error
		if sg, err = s.segment(rec, idx); err != nil {
			return position{}, err
		}
	}
	if sg != nil {
		return position{idx: idx, pos: pick(sg.packets), seg: sg}, nil
	}
	var ci *chunkIndex
	pos := -1
	err := s.wholeSegment(rec, idx, false, func(_ []byte, pk []Packet, c *chunkIndex) { ci, pos = c, pick(pk) })
	if err != nil {
		return position{}, err
	}
	s.cache.addIndex(ref, ci)
	return position{idx: idx, pos: pos, cidx: ci}, nil
}

// privateSegment is sealed segment idx of rec decoded: the held one, else
// a copy of its own for a bulk reader, not cached.
func (s *Store) privateSegment(rec *recording, idx uint32) (*segment, error) {
	if sg := s.heldSegment(rec, idx); sg != nil {
		return sg, nil
	}
	var sg *segment
	err := s.wholeSegment(rec, idx, true, func(raw []byte, pk []Packet, _ *chunkIndex) {
		sg = &segment{raw: raw, packets: pk}
	})
	return sg, err
}

// releaseStored takes the pages of stored segment idx of rec out of the
// process's resident memory: Badger wrote it through its mapping of the
// value log. It also has the writeback of what is stored started
// (writeback_linux.go).
func (s *Store) releaseStored(rec *recording, idx uint32) {
	if s.resident == nil {
		return
	}
	var due bool
	_ = s.withDB(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(segKey(pfxSeg, rec.seq, idx))
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error {
				s.resident.release(v, 0, len(v))
				due = s.resident.noteStored(v)
				return nil
			})
		})
	})
	if due {
		// Off the writer's way: starting the writeback of 4 MiB takes the
		// kernel about half a millisecond.
		select {
		case s.writebackCh <- struct{}{}:
		default:
		}
	}
}
