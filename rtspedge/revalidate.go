package rtspedge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4"
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

// Revalidate sends one DESCRIBE for url to its origin, with
// If-Modified-Since: lastModified when that is not empty, and returns the
// answer. It opens no session. An origin that cannot be reached within
// timeout gives an error wrapping ErrOriginUnavailable.
func Revalidate(ctx context.Context, rawURL, lastModified string, timeout time.Duration) (Revalidation, error) {
	if timeout <= 0 {
		timeout = DefaultOriginTimeout
	}
	display := redactURL(rawURL)
	pu, err := url.Parse(rawURL)
	if err != nil {
		return Revalidation{}, fmt.Errorf("origin URL %s: %w", display, ErrBadPath)
	}
	secrets := secretsOf(pu)
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return Revalidation{}, fmt.Errorf("origin URL %s: %w", display, ErrBadPath)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		Transport:    &tcp,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		DialContext:  (&net.Dialer{}).DialContext,
		OnRequest: func(req *base.Request) {
			if req.Method == base.Describe && lastModified != "" {
				req.Header["If-Modified-Since"] = base.HeaderValue{lastModified}
			}
		},
	}
	if err := c.Start2(); err != nil {
		return Revalidation{}, fmt.Errorf("origin %s: %w: revalidate: %w", display, ErrOriginUnavailable, redact(err, secrets))
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(rctx, c.Close)
	defer stop()

	_, res, err := c.Describe(u)
	var bad liberrors.ErrClientBadStatusCode
	switch {
	case errors.As(err, &bad) && bad.Code == base.StatusNotModified && res != nil:
		return Revalidation{NotModified: true, Freshness: freshnessOf(res)}, nil
	case errors.As(err, &bad):
		return Revalidation{}, fmt.Errorf("origin %s: revalidate: %w", display,
			&OriginStatusError{Method: string(base.Describe), Code: int(bad.Code), Message: bad.Message})
	case err != nil && ctx.Err() != nil:
		return Revalidation{}, fmt.Errorf("origin %s: revalidate: %w", display, ctx.Err())
	case err != nil:
		return Revalidation{}, fmt.Errorf("origin %s: %w: revalidate: %w", display, ErrOriginUnavailable, redact(err, secrets))
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
// same content: the o= lines (whose version an origin changes with the
// content) and then the whole bodies, line endings aside.
func SameDescription(a, b []byte) bool {
	oa, ob := originLine(a), originLine(b)
	if oa != ob {
		return false
	}
	norm := func(x []byte) []byte { return bytes.TrimSpace(bytes.ReplaceAll(x, []byte("\r\n"), []byte("\n"))) }
	return bytes.Equal(norm(a), norm(b))
}

// originLine is the o= line of an SDP, "" when it has none.
func originLine(sdp []byte) string {
	for line := range strings.SplitSeq(string(sdp), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "o=") {
			return l
		}
	}
	return ""
}
