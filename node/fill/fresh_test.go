package fill

import (
	"net/http"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

func TestPolicyLifetime(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	expires := at.Add(time.Hour).Format(http.TimeFormat)
	def := DefaultPolicy()
	noHeaders := def
	noHeaders.UseOriginHeaders = false
	override := def
	override.Override = "max-age=60"
	for _, tc := range []struct {
		name     string
		pol      Policy
		f        store.Freshness
		want     time.Duration
		storable bool
		stale    bool // may serve stale
	}{
		{"no headers: max_age", def, store.Freshness{}, 10 * time.Minute, true, true},
		{"max-age", def, store.Freshness{CacheControl: "max-age=30"}, 30 * time.Second, true, true},
		{"max-age over Expires", def, store.Freshness{CacheControl: "public, max-age=30", Expires: expires}, 30 * time.Second, true, true},
		{"Expires", def, store.Freshness{Expires: expires}, time.Hour, true, true},
		{"invalid Expires is past", def, store.Freshness{Expires: "0"}, 0, true, true},
		{"must-revalidate", def, store.Freshness{CacheControl: "must-revalidate"}, 10 * time.Minute, true, false},
		{"no-cache relayed", def, store.Freshness{CacheControl: "no-cache"}, 10 * time.Minute, false, true},
		{"headers ignored", noHeaders, store.Freshness{CacheControl: "no-store, max-age=5", Expires: expires}, 10 * time.Minute, true, true},
		{"override", override, store.Freshness{CacheControl: "no-cache", Expires: expires}, time.Minute, true, true},
	} {
		tc.f.FetchedAt = at
		if got := tc.pol.Lifetime(tc.f); got != tc.want {
			t.Errorf("%s: lifetime %v, want %v", tc.name, got, tc.want)
		}
		// What rtspedge.OriginSession.Cacheable says of the origin's header.
		d := parseCacheControl(tc.f.CacheControl)
		originSays := func() bool { return !d.noCache && !d.noStore && !d.private }
		if got := tc.pol.storable(originSays); got != tc.storable {
			t.Errorf("%s: storable %v, want %v", tc.name, got, tc.storable)
		}
		if got := tc.pol.mayServeStale(tc.f); got != tc.stale {
			t.Errorf("%s: may serve stale %v, want %v", tc.name, got, tc.stale)
		}
		if !tc.pol.Fresh(tc.f, at.Add(tc.want-time.Millisecond)) && tc.want > 0 || tc.pol.Fresh(tc.f, at.Add(tc.want)) {
			t.Errorf("%s: fresh until %v, not %v", tc.name, tc.pol.FreshUntil(tc.f), at.Add(tc.want))
		}
	}
}

func TestPolicyFetchedInTheFuture(t *testing.T) {
	now := time.Now()
	pol := DefaultPolicy()
	if !pol.Fresh(store.Freshness{FetchedAt: now.Add(30 * time.Second)}, now) {
		t.Error("a fetch time within the clock skew allowed is stale")
	}
	if pol.Fresh(store.Freshness{FetchedAt: now.Add(time.Hour)}, now) {
		t.Error("a fetch time an hour ahead is fresh")
	}
}
