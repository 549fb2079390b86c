package mesh

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// distrust is the providers that lied (announced a key they could not
// serve, served a bad or untrusted signature): FindProviders skips them
// until their time is up.
type distrust struct {
	ttl time.Duration

	mu    sync.Mutex
	until map[peer.ID]time.Time
}

// maxDistrusted bounds the map; past it, expired entries are dropped.
const maxDistrusted = 4096

func newDistrust(ttl time.Duration) *distrust {
	return &distrust{ttl: ttl, until: make(map[peer.ID]time.Time)}
}

// mark skips id for the ttl from now; true when it was not skipped already.
func (d *distrust) mark(id peer.ID) bool {
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
	fresh := now.After(d.until[id])
	if fresh && len(d.until) >= maxDistrusted {
		return false
	}
	d.until[id] = now.Add(d.ttl)
	return fresh
}

// skip reports whether id is distrusted now.
func (d *distrust) skip(id peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.until[id]
	if ok && time.Now().After(t) {
		delete(d.until, id)
		return false
	}
	return ok
}
