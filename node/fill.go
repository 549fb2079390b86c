package node

import (
	"context"
	"sync"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// A fill copies one stream into a store: from the peers that provide it,
// else from the origin. There is at most one fill per key per node; every
// player that asks for the key while the fill runs tails the same recording.
type fill struct {
	key       string
	originURL string  // with credentials: for dialing only, never logged
	origin    *Origin // its configured origin (nil in tests that build fills by hand)
	client    string  // address of the player that started it; "" for a prefetch

	ready chan struct{} // closed when the recording exists (st set) or err is set
	done  chan struct{} // closed when the fill goroutine has returned

	// Set before ready is closed, read-only after.
	st     *store.Store
	err    error
	ready1 sync.Once

	// Guarded by fills.mu.
	players int
	linger  *time.Timer
	cancel  context.CancelCauseFunc
	live    bool
	ended   bool // the fill goroutine is done with the recording
}

// fills is the registry of fills in progress, keyed by stream key.
type fills struct {
	mu sync.Mutex
	m  map[string]*fill
}

// joinLocked counts one more reader of the fill (a player, or a neighbour
// relaying a live stream) and cancels a pending linger. fills.mu must be held.
func (f *fill) joinLocked() {
	f.players++
	if f.linger != nil {
		f.linger.Stop()
		f.linger = nil
	}
}

// setReady publishes the recording players tail; fail publishes why there is none.
// Only the first of them counts.
func (f *fill) setReady(st *store.Store) {
	f.ready1.Do(func() { f.st = st; close(f.ready) })
}

func (f *fill) fail(err error) {
	f.ready1.Do(func() { f.err = err; close(f.ready) })
}

// wait blocks until the fill's recording exists, the fill failed, or ctx ends.
func (f *fill) wait(ctx context.Context) error {
	select {
	case <-f.ready:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nextSegment is the index of the segment a resumed fill asks a peer for.
func nextSegment(m store.Manifest) uint32 {
	if n := len(m.Segments); n > 0 {
		return m.Segments[n-1].Index + 1
	}
	return 0
}

// emptyCopy is a peer's or an origin's manifest as the start of a new local
// recording: same description, no packets yet.
func emptyCopy(m store.Manifest, key, source string) store.Manifest {
	m.Key = key
	m.Source = source
	m.Via = nil
	m.Ended = false
	m.State = store.StateFilling
	m.Segments = nil
	m.Packets = 0
	m.Bytes = 0
	m.Received = 0
	m.Created = time.Now()
	return m
}
