package rtspedge

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/rtspmesh/rtspmesh/store"
)

// ErrNotCached: a player asked Cache-Control: only-if-cached and neither
// this node nor a peer holds the stream (504 Not Cached).
var ErrNotCached = errors.New("not cached (only-if-cached)")

// StaleWarning is the Warning header a DESCRIBE answer carries when the
// description is served stale because the origin could not revalidate it.
const StaleWarning = `110 rtspmesh "Response is stale"`

// Warner is implemented by a Recording that is served with a warning: the
// server adds Warning() (when not empty) to the DESCRIBE answer.
type Warner interface {
	Warning() string
}

type onlyIfCachedKey struct{}

// OnlyIfCached reports whether the player's request behind ctx (the ctx of
// Recordings.Open) said Cache-Control: only-if-cached.
func OnlyIfCached(ctx context.Context) bool {
	v, _ := ctx.Value(onlyIfCachedKey{}).(bool)
	return v
}

// WithOnlyIfCached returns ctx marked as a request that must be answered
// from a cache (see OnlyIfCached).
func WithOnlyIfCached(ctx context.Context) context.Context {
	return context.WithValue(ctx, onlyIfCachedKey{}, true)
}

// requestContext is ctx carrying what Recordings.Open needs of req.
func requestContext(ctx context.Context, req *base.Request) context.Context {
	if req != nil && hasDirective(req.Header["Cache-Control"], "only-if-cached") {
		return WithOnlyIfCached(ctx)
	}
	return ctx
}

// hasDirective reports whether the Cache-Control values vs hold name.
func hasDirective(vs base.HeaderValue, name string) bool {
	for _, v := range vs {
		for d := range strings.SplitSeq(v, ",") {
			n, _, _ := strings.Cut(strings.TrimSpace(d), "=")
			if strings.EqualFold(strings.TrimSpace(n), name) {
				return true
			}
		}
	}
	return false
}

// Revalidation is what the origin said about a stored description.
type Revalidation struct {
	// NotModified: the origin answered 304 to If-Modified-Since.
	NotModified bool
	// SDP is the new description (nil after a 304).
	SDP []byte
	// Freshness is what the answer said, fetched now.
	Freshness store.Freshness
}

// Revalidate sends one DESCRIBE for req.URL to its origin, with
// If-Modified-Since: lastModified when that is not empty, and returns the
// answer. It opens no session; req's policy (redirects, Basic) holds as
// for OpenOrigin. An origin that cannot be reached within req.Timeout gives
// an error wrapping ErrOriginUnavailable.
func Revalidate(ctx context.Context, req OriginRequest, lastModified string) (Revalidation, error) {
	o, err := newOriginSession(req)
	if err != nil {
		return Revalidation{}, err
	}
	o.ifModifiedSince = lastModified
	if err := o.client.Start2(); err != nil {
		return Revalidation{}, o.fail("start client", err)
	}
	defer o.Close()
	rctx, cancel := context.WithTimeout(ctx, o.req.Timeout)
	defer cancel()
	stop := context.AfterFunc(rctx, o.client.Close)
	defer stop()

	_, res, err := o.client.Describe(o.u)
	var bad liberrors.ErrClientBadStatusCode
	switch {
	case errors.As(err, &bad) && bad.Code == base.StatusNotModified && res != nil && o.policy.refusedErr() == nil:
		return Revalidation{NotModified: true, Freshness: freshnessOf(res)}, nil
	case err != nil:
		return Revalidation{}, o.openErr(rctx, ctx, "DESCRIBE", err)
	}
	return Revalidation{SDP: bytes.Clone(res.Body), Freshness: freshnessOf(res)}, nil
}

// freshnessOf is what a DESCRIBE answer says about freshness, fetched now.
func freshnessOf(res *base.Response) store.Freshness {
	return store.Freshness{
		CacheControl: strings.Join(res.Header["Cache-Control"], ", "),
		Expires:      first(res.Header["Expires"]),
		LastModified: first(res.Header["Last-Modified"]),
		FetchedAt:    time.Now().UTC(),
	}
}

// SameDescription reports whether two session descriptions describe the
// same content: the o= line's version (RFC 4566 §5.2: an origin raises it
// when the session changes) when both carry the same session id, then the
// bodies without the lines an origin draws anew for every session (the o=
// line's session id, a=ssrc: gst-rtsp-server does both), line endings
// aside.
func SameDescription(a, b []byte) bool {
	ida, va, oka := originVersion(a)
	idb, vb, okb := originVersion(b)
	if oka && okb && ida == idb && va != vb {
		return false
	}
	return slices.Equal(bodyLines(a), bodyLines(b))
}

// originVersion is the session id and version of an SDP's o= line.
func originVersion(sdp []byte) (id, version string, ok bool) {
	for line := range strings.SplitSeq(string(sdp), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "o=") {
			f := strings.Fields(l)
			if len(f) >= 3 {
				return f[1], f[2], true
			}
		}
	}
	return "", "", false
}

// bodyLines are an SDP's lines but its o= and a=ssrc lines, trimmed, empty
// ones left out.
func bodyLines(sdp []byte) []string {
	var out []string
	for line := range strings.SplitSeq(string(sdp), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "o=") && !strings.HasPrefix(l, "a=ssrc") {
			out = append(out, l)
		}
	}
	return out
}
