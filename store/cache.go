package store

import (
	"container/list"
	"sync"
	"time"
	"unsafe"
)

// segment is a sealed segment held in memory: its encoded bytes and the
// decoded packets, whose RTP slices alias raw. Both are immutable once shared.
type segment struct {
	raw     []byte
	packets []Packet
	// lent: the writer's pending segment was handed to a reader or the
	// segment cache while its commit was in flight (guarded by rec.mu);
	// a segment never lent is the writer's alone again once stored
	// (Writer.SetSpare).
	lent bool
}

func (sg *segment) cost() int64 {
	return int64(cap(sg.raw)) + int64(len(sg.packets))*int64(unsafe.Sizeof(Packet{}))
}

type segRef struct {
	seq uint64
	idx uint32
}

type loadCall struct {
	done chan struct{}
	seg  *segment
	err  error
}

// Bounds of the segment cache's parts other than decoded segments.
const (
	// indexCacheBytes bounds the chunk indexes kept (about 500 bytes for a
	// 256 KiB segment: two thousand segments, half an hour of 2 Mbit/s).
	indexCacheBytes = 1 << 20
	// segmentTTL: a decoded segment leaves the cache this long after it
	// came in, used or not. Readers in it keep it (a Reader holds the
	// segment it reads); readers that enter it later read it by chunks,
	// and load it again when shareReaders of them do. Without it, segments
	// the writer sealed and segments readers passed through would hold
	// CacheBytes for good: a reader at each place of a long recording
	// keeps every segment "recently used", where one reader alone is
	// better served by chunks.
	segmentTTL = 5 * time.Second
)

// segmentCache is the store-wide cache of what readers share: decoded
// segments (bounded by Options.CacheBytes, oldest first, each for
// segmentTTL at most unless shared; concurrent misses on one segment make a
// single load, so many players of the same content cost one read), the
// chunk indexes of segments read by chunks (chunk.go), and how many readers
// are in each segment now (which makes the next reader of a segment not
// held load it decoded, to share, and keeps a shared one).
type segmentCache struct {
	mu      sync.Mutex
	segs    lru[*segment]
	indexes lru[*chunkIndex]
	loading map[segRef]*loadCall
	readers map[segRef]int // readers in the segment (decoded or by chunks)
}

func newSegmentCache(max int64) *segmentCache {
	return &segmentCache{
		segs:    newLRU(max, segmentTTL, (*segment).cost),
		indexes: newLRU(indexCacheBytes, 0, (*chunkIndex).cost),
		loading: map[segRef]*loadCall{}, readers: map[segRef]int{},
	}
}

// get returns the cached segment or loads it once for all concurrent callers.
func (c *segmentCache) get(ref segRef, load func() (*segment, error)) (*segment, error) {
	c.mu.Lock()
	if sg, ok := c.segs.get(ref); ok {
		c.mu.Unlock()
		return sg, nil
	}
	if call, ok := c.loading[ref]; ok {
		c.mu.Unlock()
		<-call.done
		return call.seg, call.err
	}
	call := &loadCall{done: make(chan struct{})}
	c.loading[ref] = call
	c.mu.Unlock()

	call.seg, call.err = load()

	c.mu.Lock()
	delete(c.loading, ref)
	if call.err == nil {
		c.segs.add(ref, call.seg)
	}
	c.mu.Unlock()
	close(call.done)
	return call.seg, call.err
}

// peek returns the cached segment of ref, or nil; it loads nothing.
func (c *segmentCache) peek(ref segRef) *segment {
	c.mu.Lock()
	defer c.mu.Unlock()
	sg, _ := c.segs.get(ref)
	return sg
}

func (c *segmentCache) add(ref segRef, sg *segment) {
	c.mu.Lock()
	c.segs.add(ref, sg)
	c.mu.Unlock()
}

// shares reports whether the decoded cache is on: without it, readers
// never load a segment to share it.
func (c *segmentCache) shares() bool { return c.segs.max > 0 }

func (c *segmentCache) index(ref segRef) (*chunkIndex, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.indexes.get(ref)
}

func (c *segmentCache) addIndex(ref segRef, ci *chunkIndex) {
	c.mu.Lock()
	c.indexes.add(ref, ci)
	c.mu.Unlock()
}

// share returns the cached decoded segment of ref, or nil. A segment that
// at least shareReaders-1 other readers are in is kept another segmentTTL:
// it stays while it is shared.
func (c *segmentCache) share(ref segRef) *segment {
	c.mu.Lock()
	defer c.mu.Unlock()
	sg, ok := c.segs.get(ref)
	if ok && c.readers[ref] >= shareReaders-1 {
		c.segs.keep(ref)
	}
	return sg
}

// enter counts a reader in ref.
func (c *segmentCache) enter(ref segRef) {
	c.mu.Lock()
	c.readers[ref]++
	c.mu.Unlock()
}

// readersIn is how many readers are in ref now.
func (c *segmentCache) readersIn(ref segRef) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readers[ref]
}

// leave undoes enter.
func (c *segmentCache) leave(ref segRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.readers[ref] - 1; n > 0 {
		c.readers[ref] = n
	} else {
		delete(c.readers, ref)
	}
}

// expire forgets the decoded segments older than segmentTTL (the store's
// goroutine calls it, so that an idle store gives their memory back).
func (c *segmentCache) expire() {
	c.mu.Lock()
	c.segs.expire()
	c.mu.Unlock()
}

// drop forgets segments of recording seq with index < below (all when below is ^0).
func (c *segmentCache) drop(seq uint64, below uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	match := func(r segRef) bool { return r.seq == seq && r.idx < below }
	c.segs.dropIf(match)
	c.indexes.dropIf(match)
}

// dropFrom forgets segments of recording seq with index >= from.
func (c *segmentCache) dropFrom(seq uint64, from uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	match := func(r segRef) bool { return r.seq == seq && r.idx >= from }
	c.segs.dropIf(match)
	c.indexes.dropIf(match)
}

// lru is a map of segRef to V, bounded by the sum of cost(V) (max; nothing
// is kept when max <= 0), that forgets the least recently used first; with
// a ttl, it forgets the oldest first instead, and what came in ttl ago.
// Its owner locks it.
type lru[V any] struct {
	max, used int64
	ttl       time.Duration
	cost      func(V) int64
	ll        *list.List // of *lruEntry[V], front = most recent
	m         map[segRef]*list.Element
	now       func() time.Time // tests
}

type lruEntry[V any] struct {
	ref   segRef
	v     V
	added time.Time
}

func newLRU[V any](max int64, ttl time.Duration, cost func(V) int64) lru[V] {
	return lru[V]{max: max, ttl: ttl, cost: cost, ll: list.New(), m: map[segRef]*list.Element{}, now: time.Now}
}

func (l *lru[V]) get(ref segRef) (V, bool) {
	l.expire()
	e, ok := l.m[ref]
	if !ok {
		var zero V
		return zero, false
	}
	if l.ttl <= 0 {
		l.ll.MoveToFront(e)
	}
	return e.Value.(*lruEntry[V]).v, true
}

func (l *lru[V]) add(ref segRef, v V) {
	if l.max <= 0 {
		return
	}
	l.expire()
	if e, ok := l.m[ref]; ok {
		if l.ttl <= 0 {
			l.ll.MoveToFront(e)
		}
		return
	}
	l.m[ref] = l.ll.PushFront(&lruEntry[V]{ref: ref, v: v, added: l.now()})
	l.used += l.cost(v)
	for l.used > l.max && l.ll.Len() > 1 {
		l.remove(l.ll.Back())
	}
}

// keep counts ref as come in now.
func (l *lru[V]) keep(ref segRef) {
	if e, ok := l.m[ref]; ok {
		e.Value.(*lruEntry[V]).added = l.now()
		l.ll.MoveToFront(e)
	}
}

// expire forgets the entries that came in l.ttl ago.
func (l *lru[V]) expire() {
	if l.ttl <= 0 {
		return
	}
	old := l.now().Add(-l.ttl)
	for e := l.ll.Back(); e != nil && e.Value.(*lruEntry[V]).added.Before(old); e = l.ll.Back() {
		l.remove(e)
	}
}

func (l *lru[V]) remove(e *list.Element) {
	en := e.Value.(*lruEntry[V])
	l.ll.Remove(e)
	delete(l.m, en.ref)
	l.used -= l.cost(en.v)
}

func (l *lru[V]) dropIf(match func(segRef) bool) {
	for e := l.ll.Front(); e != nil; {
		next := e.Next()
		if match(e.Value.(*lruEntry[V]).ref) {
			l.remove(e)
		}
		e = next
	}
}
