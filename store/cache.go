package store

import (
	"container/list"
	"sync"
	"unsafe"
)

// segment is a sealed segment held in memory: its encoded bytes and the
// decoded packets, whose RTP slices alias raw. Both are immutable once shared.
type segment struct {
	raw     []byte
	packets []Packet
}

func (sg *segment) cost() int64 {
	return int64(cap(sg.raw)) + int64(len(sg.packets))*int64(unsafe.Sizeof(Packet{}))
}

type segRef struct {
	seq uint64
	idx uint32
}

type cacheEntry struct {
	ref segRef
	seg *segment
}

type loadCall struct {
	done chan struct{}
	seg  *segment
	err  error
}

// segmentCache is the store-wide LRU of decoded segments. Concurrent misses
// on one segment make a single load, so many players of the same content
// cost one read.
type segmentCache struct {
	mu      sync.Mutex
	max     int64
	used    int64
	ll      *list.List // front = most recent
	entries map[segRef]*list.Element
	loading map[segRef]*loadCall
}

func newSegmentCache(max int64) *segmentCache {
	return &segmentCache{max: max, ll: list.New(), entries: map[segRef]*list.Element{}, loading: map[segRef]*loadCall{}}
}

// get returns the cached segment or loads it once for all concurrent callers.
func (c *segmentCache) get(ref segRef, load func() (*segment, error)) (*segment, error) {
	c.mu.Lock()
	if e, ok := c.entries[ref]; ok {
		c.ll.MoveToFront(e)
		sg := e.Value.(*cacheEntry).seg
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
		c.addLocked(ref, call.seg)
	}
	c.mu.Unlock()
	close(call.done)
	return call.seg, call.err
}

func (c *segmentCache) add(ref segRef, sg *segment) {
	c.mu.Lock()
	c.addLocked(ref, sg)
	c.mu.Unlock()
}

func (c *segmentCache) addLocked(ref segRef, sg *segment) {
	if c.max <= 0 {
		return
	}
	if e, ok := c.entries[ref]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.entries[ref] = c.ll.PushFront(&cacheEntry{ref: ref, seg: sg})
	c.used += sg.cost()
	for c.used > c.max && c.ll.Len() > 1 {
		c.removeLocked(c.ll.Back())
	}
}

func (c *segmentCache) removeLocked(e *list.Element) {
	ce := e.Value.(*cacheEntry)
	c.ll.Remove(e)
	delete(c.entries, ce.ref)
	c.used -= ce.seg.cost()
}

// drop forgets segments of recording seq with index < below (all when below is ^0).
func (c *segmentCache) drop(seq uint64, below uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.ll.Front(); e != nil; {
		next := e.Next()
		if r := e.Value.(*cacheEntry).ref; r.seq == seq && r.idx < below {
			c.removeLocked(e)
		}
		e = next
	}
}

// dropFrom forgets segments of recording seq with index >= from.
func (c *segmentCache) dropFrom(seq uint64, from uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.ll.Front(); e != nil; {
		next := e.Next()
		if r := e.Value.(*cacheEntry).ref; r.seq == seq && r.idx >= from {
			c.removeLocked(e)
		}
		e = next
	}
}
