package node

import (
	"strings"
	"time"

	"github.com/rtspmesh/rtspmesh/node/fill"
)

// Freshness policy of an origin (issue 14, DESIGN.md §10): the origins[]
// keys max_age, use_origin_headers, stale_if_error and
// cache_control_override.

// Policy is the origin's freshness policy, defaults filled in.
func (o Origin) Policy() fill.Policy {
	p := fill.DefaultPolicy()
	if o.MaxAge != nil {
		p.MaxAge = o.MaxAge.Std()
	}
	if o.UseOriginHeaders != nil {
		p.UseOriginHeaders = *o.UseOriginHeaders
	}
	if o.StaleIfError != nil {
		p.StaleIfError = *o.StaleIfError
	}
	p.Override = o.CacheControlOverride
	return p
}

// validateFreshness checks the origin's freshness keys; key names it.
func (o Origin) validateFreshness(bad complain, key string) {
	if o.CacheControlOverride != "" {
		checkCacheControl(bad, key+".cache_control_override", o.CacheControlOverride)
	}
	if o.MaxUnplayed != nil && o.MaxUnplayed.Std() < 0 {
		bad(key+".max_unplayed", "%s is negative; write e.g. \"720h\" (30 days), or \"0s\" to keep recordings however long they go unplayed", *o.MaxUnplayed)
	}
	if o.MaxAge != nil && (o.MaxAge.Std() < 0 || o.MaxAge.Std() > 100*365*24*time.Hour) {
		bad(key+".max_age", "%s is out of range; write e.g. \"10m\", or \"0s\" to revalidate on every play", *o.MaxAge)
	}
}

// maxUnplayed is how long a recording of o may go unplayed before
// retention evicts it; 0: forever.
func (o Origin) maxUnplayed() time.Duration {
	if o.MaxUnplayed == nil {
		return defaultMaxUnplayed
	}
	return o.MaxUnplayed.Std()
}

// Retention defaults.
const (
	defaultMaxUnplayed       = 30 * 24 * time.Hour
	defaultRetentionInterval = 5 * time.Minute
)

// FreshStats counts the revalidations of stale recordings so far.
func (n *Node) FreshStats() fill.FreshStats { return n.fills.FreshStats() }

// originForKey is the configured origin whose canonical URL prefixes the
// stream key, and the rest of the key after it; nil when none does.
func originForKey(origins []Origin, key string) (*Origin, string) {
	for i := range origins {
		base, err := CanonicalKey(origins[i].URL)
		if err != nil {
			continue
		}
		base = strings.TrimSuffix(base, "/")
		if rest, ok := strings.CutPrefix(key, base+"/"); ok {
			return &origins[i], rest
		}
	}
	return nil, ""
}
