package store

import "fmt"

// SetFreshness replaces the freshness of key's recording persistently (a
// revalidation that found the origin unchanged extends it from a new
// FetchedAt). It works on a complete recording, without a writer.
func (s *Store) SetFreshness(key string, f Freshness) error {
	rec, err := s.lookup(key)
	if err != nil {
		return fmt.Errorf("set freshness: %w", err)
	}
	rec.mu.Lock()
	if rec.writer != nil {
		rec.mu.Unlock()
		return fmt.Errorf("set freshness of %s: %w: a writer is open", key, ErrBusy)
	}
	rec.hdr.M.Freshness = f
	rec.mu.Unlock()
	if err := s.persistHeader(rec); err != nil {
		return fmt.Errorf("set freshness of %s: %w", key, err)
	}
	return nil
}

// DeleteIdle removes the recording of key like Delete, but only when no
// reader has it open either: ErrBusy otherwise. A recording its origin
// replaced is dropped this way once its players have finished, never under
// them.
func (s *Store) DeleteIdle(key string) error { return s.remove(key, true) }
