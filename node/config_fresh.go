package node

import (
	"net/url"
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
	if o.MaxAge != nil && (o.MaxAge.Std() < 0 || o.MaxAge.Std() > 100*365*24*time.Hour) {
		bad(key+".max_age", "%s is out of range; write e.g. \"10m\", or \"0s\" to revalidate on every play", *o.MaxAge)
	}
}

// originOf is the configured origin a player's request path names (nil
// when none: MapPath has refused the path then).
func originOf(origins []Origin, path string) *Origin {
	name, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if d, err := url.PathUnescape(name); err == nil {
		name = d
	}
	for i := range origins {
		if origins[i].Name == name {
			return &origins[i]
		}
	}
	return nil
}

// FreshStats counts the revalidations of stale recordings so far.
func (n *Node) FreshStats() fill.FreshStats { return n.fills.FreshStats() }
