package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Errors returned by the store; test with errors.Is.
var (
	ErrNotFound     = errors.New("store: recording not found")
	ErrExists       = errors.New("store: recording exists")
	ErrBusy         = errors.New("store: recording busy")
	ErrCorrupt      = errors.New("store: corrupt data")
	ErrHashMismatch = errors.New("store: segment hash mismatch")
	ErrBehindWindow = errors.New("store: reader fell behind the live window")
	ErrClosed       = errors.New("store: closed")
	ErrWouldBlock   = errors.New("store: no packet yet") // TryNext at the tail of a recording still being written
)

// Options configure a Store. Zero values take the defaults stated per field.
type Options struct {
	InMemory     bool          // Badger in memory (tests); dir ignored
	MaxBytes     int64         // quota over all recordings (encoded segment bytes); 0 = unlimited
	SegmentBytes int           // seal the open segment at this size (default 256 KiB, at most 4 MiB; in memory under 1 MiB)
	SegmentSpan  time.Duration // ...or at this much media time (default 1s)
	LiveWindow   time.Duration // rolling window kept for Live recordings (default 2m)
	// LiveSegmentSpan replaces SegmentSpan for Live recordings (default
	// 100ms): neighbours relay a live stream segment by segment, so each
	// relay hop lags by about this much.
	LiveSegmentSpan time.Duration
	OnEvict         func(key string) // called after a recording was evicted by quota or Delete
	Logger          *slog.Logger     // default: discard; the caller names the component

	// CacheBytes bounds the shared in-memory cache of decoded segments
	// (default 64 MiB; negative disables it): segments several readers are
	// in, and those the writer sealed, each for 5 s unless still shared
	// (cache.go). Readers alone in a segment read it by chunks (chunk.go).
	CacheBytes int64

	// MinFree is the free space the store keeps on its filesystem: below
	// it, segments are refused with ErrNoSpace and storing stops until it
	// is back (see space.go). Default DefaultMinFree, at least MinMinFree;
	// ignored in memory. Badger's file sizes are chosen from it.
	MinFree int64

	freeSpace func(dir string) (int64, error) // tests: replaces statfs

	gcEvery time.Duration         // value-log GC period (tests shorten it); default gcInterval
	paced   bool                  // tests: readers never read in bulk (as players, however fast they read)
	tune    func(*badger.Options) // tests: adjust Badger options
}

// Defaults.
const (
	DefaultSegmentBytes    = 256 << 10
	DefaultSegmentSpan     = time.Second
	DefaultLiveSegmentSpan = 100 * time.Millisecond
	DefaultLiveWindow      = 2 * time.Minute
	DefaultCacheBytes      = 64 << 20
	maxSegmentOption       = 4 << 20

	gcInterval    = time.Minute
	flushInterval = 5 * time.Second
)

// Store holds recordings in one Badger database. It is safe for concurrent use.
type Store struct {
	opts  Options
	log   *slog.Logger
	cache *segmentCache
	// resident takes value-log pages the store read or wrote out of the
	// process's RSS (resident_linux.go); nil in memory.
	resident *valueLogMaps

	dbMu sync.RWMutex // held (R) around every Badger call; Close takes it (W)
	// writeMu is held (R) by every write from before it is sent until its
	// commit completed (for pipelined seals: until their callback ran), and
	// (W) around DropPrefix, during which Badger refuses writes. Nobody
	// takes it while holding a recording's mu.
	writeMu   sync.RWMutex
	db        *badger.DB
	closed    bool
	done      chan struct{} // closed by Close: stops writers, wakes waiting readers
	closeOnce sync.Once

	mu          sync.Mutex // guards below; order: s.mu before rec.mu
	recs        map[string]*recording
	broken      map[string]error // stream id → why its header could not be decoded
	nextSeq     uint64
	sealer      Sealer // given to every writer (SetSealer)
	used        int64
	written     int64 // encoded bytes of the segments sealed since Open
	quotaWarned bool  // "nothing evictable" logged since the last eviction

	evictCh  chan struct{}
	dropCh   chan struct{}  // blocks of live-window segments queued in drops
	drops    []segBlock     // guarded by mu
	wg       sync.WaitGroup // the background goroutine
	inflight sync.WaitGroup // asynchronous segment commits

	writebackCh chan struct{} // value-log writeback is due (writeback_linux.go)

	space      *spaceGuard
	dir        string
	repairs    *repairs  // writes recover deferred while read-only
	quotaHeld  int64     // bytes of commits in flight counted against MaxBytes; guarded by mu
	diskGoal   int64     // evict down to this many bytes for lack of disk space; -1 none; guarded by mu
	pressureAt time.Time // last eviction for lack of space (background goroutine only)

	loads  atomic.Int64 // segment reads from Badger, whole or a chunk (tests)
	shared atomic.Int64 // of them, segments loaded decoded into the cache (tests)
	gcRuns atomic.Int64 // value-log GC passes (tests)
}

// Open opens (or creates) the store in dir, or in memory when opts.InMemory
// (whose Badger opens at its first use, withDB).
// A recording left `filling` or `live` by a previous process becomes `partial`.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if !opts.InMemory {
		if dir == "" {
			return nil, fmt.Errorf("open store: empty dir")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	s := &Store{
		opts: opts, log: opts.Logger, done: make(chan struct{}), dir: dir,
		cache: newSegmentCache(opts.CacheBytes), resident: newResident(dir, opts.InMemory),
		recs: map[string]*recording{}, broken: map[string]error{},
		evictCh: make(chan struct{}, 1), dropCh: make(chan struct{}, 1), writebackCh: make(chan struct{}, 1),
		space: newSpaceGuard(dir, &opts), diskGoal: -1,
	}
	if !opts.InMemory {
		if err := s.openDB(); err != nil {
			return nil, err
		}
	}
	s.wg.Add(1)
	go s.background()
	s.kickEviction()
	return s, nil
}

// openDB opens Badger read-write, or read-only (or not at all) when the
// filesystem has less than Badger's own reserve free, and loads the catalogue.
func (s *Store) openDB() error {
	dir, g := s.dir, s.space
	if g.enabled() {
		g.mu.Lock()
		free, err := g.checkLocked()
		g.readOnly = err == nil && free < g.reserve
		g.low = err == nil && free < g.minFree
		g.mu.Unlock()
		if err != nil {
			return fmt.Errorf("open store %s: %w", dir, err)
		}
		if g.readOnly {
			s.log.Warn("less free space than the store needs to write: opened read-only until cache.min_free is free",
				"free", free, "min_free", g.minFree, "needs", g.reserve)
			db, err := badger.Open(badgerOptions(dir, s.opts).WithReadOnly(true))
			if err != nil {
				// A write-ahead log left by a crash cannot be replayed
				// without writing: serve nothing until there is space.
				s.log.Error("cannot open the store read-only; it stays offline until cache.min_free is free", "err", err)
				return nil
			}
			s.db = db
			return s.load()
		}
		if g.low {
			s.log.Warn("free space below cache.min_free: storing stopped; players are relayed without storing",
				"free", free, "min_free", g.minFree)
		}
	}
	db, err := badger.Open(badgerOptions(dir, s.opts))
	if err != nil {
		return fmt.Errorf("open store %s: %w", dir, err)
	}
	s.db = db
	if err := s.recover(); err != nil {
		_ = db.Close()
		return fmt.Errorf("open store %s: %w", dir, err)
	}
	return nil
}

func (o *Options) fill() error {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentBytes < 1024 || o.SegmentBytes > maxSegmentOption {
		return fmt.Errorf("store options: SegmentBytes %d outside [1 KiB, 4 MiB]", o.SegmentBytes)
	}
	if o.InMemory && o.SegmentBytes+segHeaderLen+maxRecordHeader+MaxPacketBytes > memSegmentLimit {
		return fmt.Errorf("store options: SegmentBytes %d too large for an in-memory store (at most %d)",
			o.SegmentBytes, memSegmentLimit-segHeaderLen-maxRecordHeader-MaxPacketBytes)
	}
	if o.SegmentSpan == 0 {
		o.SegmentSpan = DefaultSegmentSpan
	}
	if o.SegmentSpan < 0 {
		return fmt.Errorf("store options: negative SegmentSpan %v", o.SegmentSpan)
	}
	if o.LiveSegmentSpan == 0 {
		o.LiveSegmentSpan = DefaultLiveSegmentSpan
	}
	if o.LiveSegmentSpan < 0 {
		return fmt.Errorf("store options: negative LiveSegmentSpan %v", o.LiveSegmentSpan)
	}
	if o.LiveWindow == 0 {
		o.LiveWindow = DefaultLiveWindow
	}
	if o.LiveWindow < 0 {
		return fmt.Errorf("store options: negative LiveWindow %v", o.LiveWindow)
	}
	if o.MaxBytes < 0 {
		return fmt.Errorf("store options: negative MaxBytes %d", o.MaxBytes)
	}
	if o.gcEvery <= 0 {
		o.gcEvery = gcInterval
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinFree == 0 {
		o.MinFree = DefaultMinFree
	}
	if o.MinFree < MinMinFree && !o.InMemory {
		return fmt.Errorf("store options: MinFree %d below %d", o.MinFree, MinMinFree)
	}
	if o.freeSpace == nil {
		o.freeSpace = statfsFree
	}
	return nil
}

// Close stops the background work, persists access statistics and closes
// the database. Open writers lose their open segment (their recordings are
// `partial` after the next Open); blocked readers return ErrClosed.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() { first = true; close(s.done) })
	if !first {
		return nil
	}
	s.wg.Wait()

	s.mu.Lock()
	recs := make([]*recording, 0, len(s.recs))
	for _, r := range s.recs {
		recs = append(recs, r)
	}
	s.mu.Unlock()
	var errs []error
	for _, r := range recs {
		if s.space.state().ReadOnly {
			break // nothing can be written; the statistics are lost
		}
		if err := s.flushStats(r); err != nil {
			errs = append(errs, err)
		}
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.closed = true
	s.inflight.Wait()
	if s.db == nil {
		return errors.Join(errs...)
	}
	s.resident.close()
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	return errors.Join(errs...)
}

// maxSegment is the largest encoded segment this store can hold.
func (s *Store) maxSegment() int {
	if s.opts.InMemory {
		return memSegmentLimit
	}
	return MaxSegmentBytes
}

// update runs fn in a read-write transaction and commits it, when there is
// space for a small write.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	if err := s.space.admit(headerWrite, false); err != nil {
		return err
	}
	defer s.space.release(headerWrite)
	return s.withDB(func(db *badger.DB) error {
		s.writeMu.RLock()
		defer s.writeMu.RUnlock()
		return db.Update(fn)
	})
}

// withDB runs fn while the database is guaranteed open. An in-memory
// store opens its Badger here, at its first use: until then it costs no
// memtable arena (a node's relay store, about 10 MiB of heap that counts
// twice against the RSS while the garbage collector lets the heap double,
// is used by uncacheable streams only).
func (s *Store) withDB(fn func(db *badger.DB) error) error {
	s.dbMu.RLock()
	if s.db == nil && s.opts.InMemory && !s.closed {
		s.dbMu.RUnlock()
		if err := s.openMemory(); err != nil {
			return err
		}
		s.dbMu.RLock()
	}
	defer s.dbMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.db == nil {
		return fmt.Errorf("%w: store offline until there is space to open it", ErrNoSpace)
	}
	return fn(s.db)
}

// openMemory opens an in-memory store's Badger (withDB), empty: there is
// nothing to recover.
func (s *Store) openMemory() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != nil || s.closed {
		return nil
	}
	db, err := badger.Open(badgerOptions("", s.opts))
	if err != nil {
		return fmt.Errorf("open in-memory store: %w", err)
	}
	s.db = db
	return nil
}

// background owns value-log GC, access-statistics flushing and eviction.
func (s *Store) background() {
	defer s.wg.Done()
	gc := time.NewTicker(s.opts.gcEvery)
	defer gc.Stop()
	flush := time.NewTicker(flushInterval)
	defer flush.Stop()
	var poll <-chan time.Time
	if s.space.enabled() {
		t := time.NewTicker(spacePoll)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-s.done:
			return
		case <-s.evictCh:
			s.evict()
		case <-s.dropCh:
			s.dropBlocks()
		case <-s.writebackCh:
			s.resident.startWriteback()
		case <-gc.C:
			s.runGC()
		case <-flush.C:
			s.flushAll()
			s.cache.expire()
		case <-poll:
			s.pollSpace()
		}
	}
}

// runGC rewrites value-log files that are at least half garbage, a few at a
// time. Writes wait while a file is rewritten: Badger v4.9.6's GC reads the
// memtable's max version without synchronisation against concurrent writes
// (the race detector flags it). With 64 MiB value-log files a rewrite moves
// at most 32 MiB, so writers (whose seals are pipelined) wait briefly.
func (s *Store) runGC() {
	if s.opts.InMemory {
		return
	}
	for range 8 {
		// A rewrite takes at most half a value-log file, which Badger's
		// reserve covers.
		if s.space.admit(0, false) != nil {
			return
		}
		var err error
		_ = s.withDB(func(db *badger.DB) error {
			s.writeMu.Lock()
			defer s.writeMu.Unlock()
			err = db.RunValueLogGC(0.5)
			return nil
		})
		s.resident.remapped()
		s.gcRuns.Add(1)
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.log.Warn("value log gc", "err", err)
			}
			return
		}
		select {
		case <-s.done:
			return
		default:
		}
	}
}

func (s *Store) flushAll() {
	if s.space.state().ReadOnly {
		return // nothing can be written; the statistics stay in memory
	}
	s.mu.Lock()
	recs := make([]*recording, 0, len(s.recs))
	for _, r := range s.recs {
		recs = append(recs, r)
	}
	s.mu.Unlock()
	for _, r := range recs {
		if err := s.flushStats(r); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("persist access statistics", "stream", r.id, "err", err)
		}
	}
}
