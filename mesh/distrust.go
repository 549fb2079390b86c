package mesh

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// distrust is the providers that lied: one that served a bad or untrusted
// signature for any key, one that announced a key it could not serve for
// that key. FindProviders skips them until their time is up.
type distrust struct {
	ttl time.Duration

	mu    sync.Mutex
	until map[liar]time.Time
}

// liar is a distrusted provider, for one key or (key "") for every key.
type liar struct {
	id  peer.ID
	key string
}

// maxDistrusted bounds the map; past it, expired entries are dropped.
const maxDistrusted = 4096

func newDistrust(ttl time.Duration) *distrust {
	return &distrust{ttl: ttl, until: make(map[liar]time.Time)}
}

// mark skips id for key ("": every key) for the ttl from now; true when it
// was not skipped already.
func (d *distrust) mark(id peer.ID, key string) bool {
	l := liar{id, key}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.until) >= maxDistrusted {
		for k, t := range d.until {
			if now.After(t) {
				delete(d.until, k)
			}
		}
	}
	fresh := now.After(d.until[l])
	if fresh && len(d.until) >= maxDistrusted {
		return false
	}
	d.until[l] = now.Add(d.ttl)
	return fresh
}

// skip reports whether id is distrusted now for key.
func (d *distrust) skip(id peer.ID, key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.activeLocked(liar{id, ""}) || d.activeLocked(liar{id, key})
}

func (d *distrust) activeLocked(l liar) bool {
	t, ok := d.until[l]
	if ok && time.Now().After(t) {
		delete(d.until, l)
		return false
	}
	return ok
}
