package origin

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// Replace replaces the VOD file behind path, as a publisher re-publishing a
// video does: from now on DESCRIBE answers with the new description and
// Last-Modified: modified (whole seconds), and new sessions play the new
// file. Sessions already playing go on with the old one. It is for tests
// of caches that must notice.
func (o *Origin) Replace(path string, ts []byte, modified time.Time) error {
	path = strings.Trim(path, "/")
	old, ok := o.entries[path]
	if !ok || old.live {
		return fmt.Errorf("origin: replace %q: no such VOD path", path)
	}
	e, err := newEntry(path, ts, false, old.cacheControl, modified.Truncate(time.Second))
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.replaced == nil {
		o.replaced = make(map[string]*entry)
	}
	if prev, ok := o.replaced[path]; ok {
		e.describes, e.plays = prev.describes, prev.plays
	} else {
		e.describes, e.plays = old.describes, old.plays
	}
	o.replaced[path] = e
	return nil
}

// newEntry packetizes the MPEG-TS file ts to serve at path.
func newEntry(path string, ts []byte, live bool, cacheControl string, modified time.Time) (*entry, error) {
	c, err := Packetize(ts)
	if err != nil {
		return nil, fmt.Errorf("origin: %s: %w", path, err)
	}
	sdp, err := describe(c, live)
	if err != nil {
		return nil, fmt.Errorf("origin: %s: %w", path, err)
	}
	return &entry{path: path, clip: c, live: live, sdp: sdp, cacheControl: cacheControl, modified: modified}, nil
}

// current is the entry path serves now: its replacement, if any.
func (o *Origin) current(path string) (*entry, bool) {
	o.mu.Lock()
	e, ok := o.replaced[path]
	o.mu.Unlock()
	if ok {
		return e, true
	}
	e, ok = o.entries[path]
	return e, ok
}

// freshnessHeaders adds what Config says about e's freshness to a
// DESCRIBE answer: Expires.
func (o *Origin) freshnessHeaders(e *entry, res *base.Response) {
	if t, ok := o.cfg.Expires[e.path]; ok {
		res.Header["Expires"] = base.HeaderValue{t.UTC().Format(http.TimeFormat)}
	}
}
