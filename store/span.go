package store

import (
	"errors"
	"fmt"
	"time"
)

// ErrEmpty is returned by Span for a recording that holds no packet yet.
var ErrEmpty = errors.New("store: recording has no packets")

// Span returns the tt of the oldest packet stored for key and of the newest
// appended, the open segment included: for a live recording, its window now.
// A reader positioned at first is inside the window (until it moves).
// ErrEmpty when the recording holds no packet yet.
func (s *Store) Span(key string) (first, last time.Duration, err error) {
	rec, err := s.lookup(key)
	if err != nil {
		return 0, 0, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	switch {
	case rec.deleted:
		return 0, 0, fmt.Errorf("%s: %w", key, ErrNotFound)
	case !rec.hasLast:
		return 0, 0, fmt.Errorf("%s: %w", key, ErrEmpty)
	case len(rec.segs) > 0:
		first = rec.segs[0].FirstTT
	case rec.pending != nil:
		first = rec.pendingInfo.FirstTT
	case rec.open != nil && len(rec.open.packets) > 0:
		first = rec.open.packets[0].TT
	default:
		return 0, 0, fmt.Errorf("%s: %w", key, ErrEmpty)
	}
	return first, rec.lastTT, nil
}
