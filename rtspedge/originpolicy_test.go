package rtspedge

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/fakeorigin"
)

// withCreds puts user:pass into an rtsp:// URL.
func withCreds(url, user, pass string) string {
	return strings.Replace(url, "rtsp://", "rtsp://"+user+":"+pass+"@", 1)
}

// TestOriginRedirectOffOrigin: an origin that redirects DESCRIBE anywhere
// but its own scheme, host and port is refused with ErrOriginPolicy; the
// other listener (which would ask for Basic credentials and serve a stream)
// never gets a connection, and nothing is stored.
func TestOriginRedirectOffOrigin(t *testing.T) {
	t.Parallel()
	other := fakeorigin.StartT(t, fakeorigin.Config{Auth: "basic", User: "alice", Pass: "s3cretpw"})
	for _, tc := range []struct{ name, location string }{
		{"other port", other.URL("stolen.ts")},
		{"other port, same path", other.URL("x.ts")},
		{"other host name", strings.Replace(other.URL("x.ts"), "127.0.0.1", "localhost", 1)},
		{"other scheme", "rtsps://" + other.Addr() + "/x.ts"},
		{"relative", "x2.ts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			redirector := fakeorigin.StartT(t, fakeorigin.Config{Redirects: map[string]string{"x.ts": tc.location}})
			_, err := OpenOrigin(t.Context(), OriginRequest{
				URL: withCreds(redirector.URL("x.ts"), "alice", "s3cretpw"), Timeout: 3 * time.Second, AskMetaInfo: true})
			if !errors.Is(err, ErrOriginPolicy) {
				t.Fatalf("err %v, want ErrOriginPolicy", err)
			}
			if strings.Contains(err.Error(), "s3cretpw") || strings.Contains(err.Error(), "alice") {
				t.Fatalf("credentials in error: %v", err)
			}
			if got := statusFor(err); got != 502 {
				t.Fatalf("player status %d, want 502", got)
			}
			t.Logf("error: %v", err)
		})
	}
	// Asked after the subtests ran (they are parallel: t.Run returns first).
	t.Cleanup(func() {
		if n := other.Accepted(); n != 0 {
			t.Errorf("the other listener got %d connections, requests %+v", n, other.Requests())
		}
	})
}

// TestOriginRedirectLoop: redirects within the origin are followed at most
// five times in a row.
func TestOriginRedirectLoop(t *testing.T) {
	t.Parallel()
	o := fakeorigin.StartT(t, fakeorigin.Config{Redirects: map[string]string{"a.ts": "/b.ts", "b.ts": "/a.ts"}})
	_, err := OpenOrigin(t.Context(), OriginRequest{URL: o.URL("a.ts"), Timeout: 3 * time.Second})
	if !errors.Is(err, ErrOriginPolicy) || !strings.Contains(err.Error(), "more than 5 redirects") {
		t.Fatalf("err %v, want ErrOriginPolicy for a loop", err)
	}
}

// TestOriginRedirectWithinOrigin: a redirect to another path of the same
// origin is followed (credentials and all) and the stream fills; with
// RefuseRedirects it is refused.
func TestOriginRedirectWithinOrigin(t *testing.T) {
	t.Parallel()
	o := fakeorigin.StartT(t, fakeorigin.Config{Redirects: map[string]string{"old.ts": "/new.ts"},
		Auth: "digest", User: "alice", Pass: "s3cretpw"})
	st := newStore(t)
	m := fill(t, st, "k", withCreds(o.URL("old.ts"), "alice", "s3cretpw"), OriginRequest{AskMetaInfo: true})
	if m.Packets != 50 {
		t.Fatalf("stored %d packets after a same-origin redirect, want 50", m.Packets)
	}
	sawNew := false
	for _, r := range o.Requests() {
		sawNew = sawNew || r.Method == "DESCRIBE" && strings.HasSuffix(r.URL, "/new.ts")
	}
	if !sawNew {
		t.Fatalf("the redirect was not followed: %+v", o.Requests())
	}

	_, err := OpenOrigin(t.Context(), OriginRequest{URL: withCreds(o.URL("old.ts"), "alice", "s3cretpw"),
		Timeout: 3 * time.Second, RefuseRedirects: true})
	if !errors.Is(err, ErrOriginPolicy) {
		t.Fatalf("RefuseRedirects: err %v, want ErrOriginPolicy", err)
	}
}

// TestOriginBasicOverPlain: an origin that offers only Basic over rtsp://
// is refused, and never receives an Authorization header; allowed for the
// origin, Basic works.
func TestOriginBasicOverPlain(t *testing.T) {
	t.Parallel()
	o := fakeorigin.StartT(t, fakeorigin.Config{Auth: "basic", User: "alice", Pass: "s3cretpw"})
	url := withCreds(o.URL("x.ts"), "alice", "s3cretpw")
	_, err := OpenOrigin(t.Context(), OriginRequest{URL: url, Timeout: 3 * time.Second})
	if !errors.Is(err, ErrOriginPolicy) || !strings.Contains(err.Error(), "Basic") {
		t.Fatalf("err %v, want ErrOriginPolicy naming Basic", err)
	}
	if strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("credentials in error: %v", err)
	}
	for _, r := range o.Requests() {
		if r.Authorization != "" {
			t.Fatalf("%s carried Authorization %q", r.Method, r.Authorization)
		}
	}
	t.Logf("error: %v", err)

	st := newStore(t)
	m := fill(t, st, "k", url, OriginRequest{AllowBasicOverPlain: true})
	if m.Packets != 50 {
		t.Fatalf("allowed Basic: stored %d packets, want 50", m.Packets)
	}
}

// TestOriginDigest: Digest credentials work over plain rtsp://, and the
// password never crosses the wire.
func TestOriginDigest(t *testing.T) {
	t.Parallel()
	o := fakeorigin.StartT(t, fakeorigin.Config{Auth: "digest", User: "alice", Pass: "s3cretpw"})
	st := newStore(t)
	m := fill(t, st, "k", withCreds(o.URL("x.ts"), "alice", "s3cretpw"), OriginRequest{AskMetaInfo: true})
	if m.Packets != 50 {
		t.Fatalf("stored %d packets, want 50", m.Packets)
	}
	authed := 0
	for _, r := range o.Requests() {
		if strings.Contains(r.Authorization, "s3cretpw") {
			t.Fatalf("password in clear in %s", r.Method)
		}
		if strings.HasPrefix(r.Authorization, "Digest") {
			authed++
		}
	}
	if authed == 0 {
		t.Fatal("no Digest Authorization sent")
	}
}
