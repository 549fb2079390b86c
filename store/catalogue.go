package store

import (
	"fmt"
	"sort"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Info describes one recording in the catalogue.
type Info struct {
	Key, ID             string
	State               State
	Live                bool
	ClassReason         string // why Live is what it is (Manifest.ClassReason)
	Duration            time.Duration
	Bytes, Packets      uint64 // RTP bytes and packets stored
	Segments            int    // sealed segments stored
	StoredBytes         int64  // their encoded bytes: what the recording takes in the store
	Created, LastAccess time.Time
	Hits                uint64 // readers opened
	Source              string
	Via                 []string // a live relay's chain of peers, origin-facing first
	Pinned              bool
	Readers             int  // readers open now
	Filling             bool // a writer is open
}

func (r *recording) infoLocked() Info {
	h := &r.hdr
	return Info{
		Key: r.key, ID: r.id, State: h.M.State, Live: h.M.Live, ClassReason: h.M.ClassReason, Duration: h.M.Duration,
		Bytes: h.M.Bytes, Packets: h.M.Packets, Segments: int(h.NextIndex - h.FirstIndex), StoredBytes: h.StoredBytes,
		Created: h.M.Created, LastAccess: h.LastAccess, Hits: h.Hits, Source: h.M.Source,
		Via: append([]string(nil), h.M.Via...), Pinned: h.Pinned, Readers: r.readers, Filling: r.writer != nil,
	}
}

// List returns every recording, ordered by key.
func (s *Store) List() ([]Info, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	s.mu.Lock()
	out := make([]Info, 0, len(s.recs))
	for _, rec := range s.recs {
		rec.mu.Lock()
		out = append(out, rec.infoLocked())
		rec.mu.Unlock()
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Info describes the recording of key.
func (s *Store) Info(key string) (Info, error) {
	s.mu.Lock()
	rec, ok := s.recs[key]
	s.mu.Unlock()
	if !ok {
		if err := s.brokenErr(key); err != nil {
			return Info{}, err
		}
		return Info{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.infoLocked(), nil
}

// Delete removes the recording of key; ErrBusy while a writer is open. Open
// readers get ErrNotFound when they need a segment they do not hold.
// Options.OnEvict is called afterwards.
func (s *Store) Delete(key string) error { return s.remove(key, false) }

// remove is Delete, and with idleOnly DeleteIdle (ErrBusy while a reader
// has the recording open too).
func (s *Store) remove(key string, idleOnly bool) error {
	if s.space.state().ReadOnly {
		return fmt.Errorf("delete %s: %w: the store is read-only", key, ErrNoSpace)
	}
	s.mu.Lock()
	rec, ok := s.recs[key]
	if !ok {
		s.mu.Unlock()
		if err := s.brokenErr(key); err != nil {
			return s.deleteBroken(key)
		}
		return fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	rec.mu.Lock()
	if busy := rec.writer != nil || (idleOnly && rec.readers > 0); busy {
		open := "a writer"
		if rec.writer == nil {
			open = "a reader"
		}
		rec.mu.Unlock()
		s.mu.Unlock()
		return fmt.Errorf("delete %s: %w: %s is open", key, ErrBusy, open)
	}
	s.unlinkLocked(rec)
	rec.mu.Unlock()
	s.mu.Unlock()
	if err := s.purge(rec); err != nil {
		return err
	}
	s.evicted(key)
	return nil
}

// unlinkLocked removes rec from the catalogue; s.mu and rec.mu are held.
func (s *Store) unlinkLocked(rec *recording) {
	rec.deleted = true
	rec.notifyLocked()
	delete(s.recs, rec.key)
	s.used -= rec.hdr.StoredBytes
}

// deleteBroken removes the unreadable header of key (its segments, whose
// sequence number is unknown, stay until a later version can find them).
func (s *Store) deleteBroken(key string) error {
	err := s.update(func(txn *badger.Txn) error { return txn.Delete(headerKey(key)) })
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	s.mu.Lock()
	delete(s.broken, StreamID(key))
	s.mu.Unlock()
	return nil
}

func (s *Store) evicted(key string) {
	if s.opts.OnEvict != nil {
		s.opts.OnEvict(key)
	}
}

// SetPinned pins (never evicted) or unpins the recording of key.
func (s *Store) SetPinned(key string, pinned bool) error {
	rec, err := s.lookup(key)
	if err != nil {
		return err
	}
	rec.mu.Lock()
	rec.hdr.Pinned = pinned
	rec.dirty = true
	rec.mu.Unlock()
	if err := s.persistHeader(rec); err != nil {
		return fmt.Errorf("pin %s: %w", key, err)
	}
	if !pinned {
		s.addUsed(0)
	}
	return nil
}

// Usage reports the encoded segment bytes stored and the quota (0 = none).
func (s *Store) Usage() (used, max int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used, s.opts.MaxBytes
}

// Written is the encoded bytes of every segment sealed since Open,
// including those a live window has dropped since: what the store has
// written, before Badger's own overhead.
func (s *Store) Written() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// evictableLocked returns the least recently used recording that may be
// evicted, and adds the bytes of every such recording to *total when total
// is not nil. s.mu is held.
func (s *Store) evictableLocked(total *int64) *recording {
	var victim *recording
	var oldest time.Time
	for _, rec := range s.recs {
		rec.mu.Lock()
		ok := !rec.hdr.Pinned && rec.writer == nil && rec.readers == 0
		at, size := rec.hdr.LastAccess, rec.hdr.StoredBytes
		rec.mu.Unlock()
		if ok && total != nil {
			*total += size
		}
		if ok && (victim == nil || at.Before(oldest)) {
			victim, oldest = rec, at
		}
	}
	return victim
}

// kickEviction asks the background goroutine for an eviction pass.
func (s *Store) kickEviction() {
	select {
	case s.evictCh <- struct{}{}:
	default:
	}
}

// evict removes least-recently-used recordings until usage is within quota,
// or within the goal set for lack of disk space (pollSpace). Pinned
// recordings, recordings with a writer and recordings with readers are
// skipped.
func (s *Store) evict() {
	if s.space.state().ReadOnly {
		return
	}
	for {
		s.mu.Lock()
		limit, on := s.opts.MaxBytes, s.opts.MaxBytes > 0
		if s.diskGoal >= 0 && (!on || s.diskGoal < limit) {
			limit, on = s.diskGoal, true
		}
		if !on || s.used <= limit {
			s.diskGoal = -1
			s.mu.Unlock()
			return
		}
		victim := s.evictableLocked(nil)
		if victim == nil {
			used, warned := s.used, s.quotaWarned
			s.quotaWarned = true
			s.diskGoal = -1
			s.mu.Unlock()
			if !warned {
				s.log.Warn("over quota with nothing evictable", "used", used, "max", limit)
			}
			return
		}
		s.quotaWarned = false
		victim.mu.Lock()
		s.unlinkLocked(victim)
		size := victim.hdr.StoredBytes
		victim.mu.Unlock()
		s.mu.Unlock()
		if err := s.purge(victim); err != nil {
			s.log.Error("evict", "stream", victim.id, "err", err)
			return
		}
		s.log.Info("evicted", "stream", victim.id, "bytes", size)
		s.evicted(victim.key)
	}
}
