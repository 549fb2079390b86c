package store

import (
	"errors"

	"fmt"
	badger "github.com/dgraph-io/badger/v4"
	"log/slog"
	"math/bits"
	"sync"
	"time"
)

// ErrNoSpace is returned for a write the store refuses because the
// filesystem is below its free-space headroom (Options.MinFree), the store is
// read-only for lack of space, or the quota is full of recordings that cannot
// be evicted. Nothing was written; the caller relays without storing.
var ErrNoSpace = errors.New("store: no space")

// Free space.
//
// Badger memory-maps its value-log and memtable-WAL files (created sparse, at
// twice their nominal size) and writes its tables through a memory map too. A
// write to a page the filesystem cannot back is a SIGBUS that kills the
// process, not an error. So the store never lets its filesystem get near
// full:
//
//   - Every segment commit first checks the free space (statfs) and reserves
//     its size: it is refused (ErrNoSpace) when less than Options.MinFree
//     would be left, counting the commits in flight. Storing then stops
//     (Storing is false, one log line) until a poll every spacePoll finds
//     MinFree plus an eighth free again.
//   - Every other write (headers, deletions, value-log GC) needs only
//     Badger's own reserve free: what Badger may write on its own while the
//     store refuses segments (a GC rewrite of half a value-log file, memtable
//     flushes and the L0 compaction after them, headers). MinFree is at
//     least that reserve, and Badger's file sizes are chosen from MinFree so
//     that it is (badgerFileSizes).
//   - At Open, with less than the reserve free, Badger is opened read-only:
//     recordings are served, nothing is written. Should even that fail (a
//     write-ahead log left by a crash needs a write to replay), the store
//     starts empty and offline. Either way a poll reopens it read-write once
//     the reserve is free; storing resumes at MinFree plus an eighth.
//   - While space is short the store evicts, least recently used first, as
//     the quota's rules allow (never a recording being filled, read or
//     pinned), twice the deficit plus a value-log file every pressureRetry,
//     and runs value-log GC every poll so that the space comes back.
//
// Another process that fills the filesystem faster than MinFree within one
// commit can still starve Badger: MinFree is the operator's margin for that.

// Free-space defaults and limits.
const (
	DefaultMinFree = 512 << 20
	MinMinFree     = 8 << 20
	spacePoll      = time.Second
	pressureRetry  = 10 * time.Second // between evictions for lack of space
	headerWrite    = 8 << 10          // what a header write or deletion may take
)

// badgerFileSizes picks Badger's value-log file and memtable sizes for a
// headroom of minFree: the largest powers of two up to an eighth (value log,
// at most 64 MiB) and a sixteenth (memtable, at most 4 MiB) of it, at least
// 1 MiB each (Badger's minimum value-log file).
func badgerFileSizes(minFree int64) (vlog, mem int64) {
	pow2 := func(n, lo, hi int64) int64 {
		if n < lo {
			return lo
		}
		return min(int64(1)<<(63-bits.LeadingZeros64(uint64(n))), hi)
	}
	return pow2(minFree/8, 1<<20, 64<<20), pow2(minFree/16, 1<<20, 4<<20)
}

// badgerReserve is what Badger may write without the store asking: a value-log
// GC rewrite (at most half a file, the rest is garbage), a memtable flush plus
// an L0 compaction of up to five tables, and 1 MiB for headers, the
// discard-stats file and the first pages of new files.
func badgerReserve(vlog, mem int64) int64 { return vlog/2 + 6*mem + 1<<20 }

// SpaceState is the store's view of its filesystem, for operators.
type SpaceState struct {
	Storing  bool      // segments are being stored
	ReadOnly bool      // opened read-only (or offline) for lack of space
	Free     int64     // bytes free at the last check; -1 when unknown or in memory
	MinFree  int64     // Options.MinFree
	Reserve  int64     // Badger's own reserve (below it nothing is written)
	Since    time.Time // when Storing last changed
	Refused  int64     // segment commits refused for lack of space
	// QuotaFull: Options.MaxBytes is taken by recordings that cannot be
	// evicted (being filled, read or pinned); new segments are refused.
	QuotaFull bool
}

// spaceGuard tracks free space and the commits in flight. The zero guard
// (in-memory stores) admits everything.
type spaceGuard struct {
	dir     string
	minFree int64
	reserve int64
	statfs  func(dir string) (int64, error)
	log     *slog.Logger

	mu       sync.Mutex
	reserved int64 // bytes admitted whose commit has not completed
	low      bool  // storing stopped
	readOnly bool
	free     int64
	since    time.Time
	refused  int64
}

func newSpaceGuard(dir string, o *Options) *spaceGuard {
	if o.InMemory {
		return &spaceGuard{free: -1, since: time.Now()}
	}
	vlog, mem := badgerFileSizes(o.MinFree)
	return &spaceGuard{dir: dir, minFree: o.MinFree, reserve: badgerReserve(vlog, mem),
		statfs: o.freeSpace, log: o.Logger, since: time.Now()}
}

func (g *spaceGuard) enabled() bool { return g.statfs != nil }

// check reads the free space; the caller holds g.mu.
func (g *spaceGuard) checkLocked() (int64, error) {
	free, err := g.statfs(g.dir)
	if err != nil {
		return 0, fmt.Errorf("free space of %s: %w", g.dir, err)
	}
	g.free = free
	return free, nil
}

// admit reserves n bytes for a write. A segment needs MinFree left after it
// and stops storing when refused; any other write needs Badger's reserve.
func (g *spaceGuard) admit(n int64, segment bool) error {
	if !g.enabled() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.readOnly {
		return fmt.Errorf("%w: store is read-only until %s is free", ErrNoSpace, sizeString(g.minFree))
	}
	if segment && g.low {
		g.refused++
		return fmt.Errorf("%w: storing stopped: less than %s free", ErrNoSpace, sizeString(g.minFree))
	}
	free, err := g.checkLocked()
	if err != nil {
		return err
	}
	left := free - g.reserved - n
	switch {
	case segment && left < g.minFree:
		g.refused++
		g.setLowLocked(true, free)
		return fmt.Errorf("%w: %s free, keeping %s", ErrNoSpace, sizeString(free), sizeString(g.minFree))
	case left < g.reserve:
		return fmt.Errorf("%w: %s free, Badger needs %s", ErrNoSpace, sizeString(free), sizeString(g.reserve))
	}
	g.reserved += n
	return nil
}

func (g *spaceGuard) release(n int64) {
	if !g.enabled() {
		return
	}
	g.mu.Lock()
	g.reserved -= n
	g.mu.Unlock()
}

// setLowLocked changes the storing state and logs the change once.
func (g *spaceGuard) setLowLocked(low bool, free int64) {
	if g.low == low {
		return
	}
	g.low, g.since = low, time.Now()
	if low {
		g.log.Warn("free space below cache.min_free: storing stopped; players are relayed without storing",
			"free", free, "min_free", g.minFree)
	} else {
		g.log.Info("free space is back: storing resumed", "free", free, "min_free", g.minFree)
	}
}

// poll re-reads the free space: storing stops below MinFree and resumes
// above MinFree plus an eighth (so that it does not flap). It reports whether
// Badger's reserve is free (a read-only store may reopen read-write, and
// evict) and whether space is short (to evict).
func (g *spaceGuard) poll() (writable, short bool) {
	if !g.enabled() {
		return true, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	free, err := g.checkLocked()
	if err != nil {
		g.log.Warn("check free space", "err", err)
		return !g.readOnly, false
	}
	avail := free - g.reserved
	switch {
	case avail < g.minFree:
		g.setLowLocked(true, free)
	case avail >= g.minFree+g.minFree/8 && !g.readOnly:
		g.setLowLocked(false, free)
	}
	return avail >= g.reserve, g.low
}

// deficit is how many bytes short of resuming the filesystem is.
func (g *spaceGuard) deficit() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(g.minFree+g.minFree/8-(g.free-g.reserved), 0)
}

func (g *spaceGuard) state() SpaceState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return SpaceState{Storing: !g.low && !g.readOnly, ReadOnly: g.readOnly, Free: g.free,
		MinFree: g.minFree, Reserve: g.reserve, Since: g.since, Refused: g.refused}
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

// Space reports the store's free-space state.
func (s *Store) Space() SpaceState {
	st := s.space.state()
	st.QuotaFull = s.quotaFull()
	st.Storing = st.Storing && !st.QuotaFull
	return st
}

// Storing is false while the store refuses new segments for lack of space
// or quota: new fills should relay without storing.
func (s *Store) Storing() bool { return s.Space().Storing }

// pollSpace runs on the Store's goroutine every spacePoll: it reopens a
// read-only store read-write once there is space, and while space is short
// evicts what the quota's rules allow (least recently used first; never a
// recording being filled, read or pinned) and lets value-log GC give the
// space back.
func (s *Store) pollSpace() {
	writable, short := s.space.poll()
	if s.space.state().ReadOnly {
		if writable {
			s.reopen()
		}
		return
	}
	if !short {
		return
	}
	// Evicted bytes come back only once value-log GC rewrote their files:
	// evict again only after GC had time, or everything would go.
	if now := time.Now(); now.Sub(s.pressureAt) >= pressureRetry {
		s.pressureAt = now
		// Twice the deficit plus a value-log file: GC rewrites a file only
		// once half of it is garbage, and the recordings evicted may share
		// their files with others.
		vlog, _ := badgerFileSizes(s.opts.MinFree)
		deficit := 2 * (s.space.deficit() + vlog)
		s.mu.Lock()
		s.diskGoal = max(s.used-deficit, 0)
		s.mu.Unlock()
		s.evict()
	}
	s.runGC()
}

// reopen replaces a read-only (or offline) Badger with a read-write one and
// makes the writes that were deferred.
func (s *Store) reopen() {
	s.dbMu.Lock()
	if s.closed {
		s.dbMu.Unlock()
		return
	}
	offline := s.db == nil
	if !offline {
		if err := s.db.Close(); err != nil {
			s.log.Warn("close read-only store", "err", err)
		}
		s.db = nil
	}
	db, err := badger.Open(badgerOptions(s.dir, s.opts))
	if err != nil {
		s.dbMu.Unlock()
		s.log.Error("reopen the store read-write; it stays offline", "err", err)
		return
	}
	s.db = db
	s.space.mu.Lock()
	s.space.readOnly = false
	s.space.mu.Unlock()
	s.dbMu.Unlock()
	s.log.Info("store reopened read-write: free space is back")
	if offline {
		err = s.load()
	}
	if err == nil {
		err = s.repair()
	}
	if err != nil {
		s.log.Error("recover the store after reopening", "err", err)
	}
	s.space.poll() // storing resumes
	s.kickEviction()
}

// admitSegment reserves n bytes for a segment commit against the quota
// (recordings being filled count: a commit that only eviction of nothing
// could make room for is refused) and the free space. release undoes it.
func (s *Store) admitSegment(n int64) error {
	s.mu.Lock()
	if s.opts.MaxBytes > 0 && n > 0 && s.used+s.quotaHeld+n > s.opts.MaxBytes {
		var evictable int64
		s.evictableLocked(&evictable)
		if s.used+s.quotaHeld+n-evictable > s.opts.MaxBytes {
			warned := s.quotaWarned
			s.quotaWarned = true
			used := s.used
			s.mu.Unlock()
			if !warned {
				s.log.Warn("quota full of recordings that cannot be evicted: new segments are refused",
					"used", used, "max", s.opts.MaxBytes)
			}
			return fmt.Errorf("%w: over the quota of %s with nothing evictable", ErrNoSpace, sizeString(s.opts.MaxBytes))
		}
		s.kickEviction()
	}
	s.quotaHeld += max(n, 0)
	s.mu.Unlock()
	if err := s.space.admit(max(n, 0), true); err != nil {
		s.mu.Lock()
		s.quotaHeld -= max(n, 0)
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *Store) releaseSegment(n int64) {
	s.mu.Lock()
	s.quotaHeld -= max(n, 0)
	s.mu.Unlock()
	s.space.release(max(n, 0))
}

// quotaFull is true when a segment of Options.SegmentBytes would be refused
// for the quota.
func (s *Store) quotaFull() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(s.opts.SegmentBytes)
	if s.opts.MaxBytes <= 0 || s.used+s.quotaHeld+n <= s.opts.MaxBytes {
		return false
	}
	var evictable int64
	s.evictableLocked(&evictable)
	return s.used+s.quotaHeld+n-evictable > s.opts.MaxBytes
}
