package rtspedge

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
)

// Player authentication (issue 13).
//
// With ServerConfig.Auth set, DESCRIBE and SETUP need credentials: RTSP
// Digest (RFC 2069 form, MD5, as ffmpeg, GStreamer and VLC answer a
// challenge without qop), and Basic only when PlayerAuth.Basic is set.
// Secrets are never held in clear: a user's secret is its HA1, the hex MD5
// of "user:realm:password", from which both the Digest response and a Basic
// password are checked. The nonce is per connection. A request without
// credentials, or with wrong ones, gets 401 with a fresh challenge;
// failures are counted, never logged one by one.

// PlayerAuth is how the server authenticates players.
type PlayerAuth struct {
	// Realm names the protection space in challenges; it is part of every
	// HA1. Required.
	Realm string
	// HA1 returns the HA1 of user when user may play path (the request
	// path, "<origin-name>/<path>"); false when the user is unknown or not
	// allowed there. Required.
	HA1 func(user, path string) (string, bool)
	// Basic also accepts Basic credentials (the password crosses the
	// network in clear text).
	Basic bool
}

// HA1 is the hex MD5 of "user:realm:password": what a PlayerAuth keeps of
// a password.
func HA1(user, realm, password string) string {
	return md5Hex(user + ":" + realm + ":" + password)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// authStats count authentication outcomes.
type authStats struct {
	challenged atomic.Uint64 // 401s for requests without credentials
	failed     atomic.Uint64 // 401s for wrong credentials
}

// newNonce returns a random nonce.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// authorize checks req for path on a connection whose nonce is nonce; it
// returns nil when the player may go on, else the 401 to answer.
func (s *Server) authorize(req *base.Request, path, nonce string) *base.Response {
	a := s.cfg.Auth
	if a == nil {
		return nil
	}
	hv, provided := req.Header["Authorization"]
	if provided {
		var h headers.Authorization
		if err := h.Unmarshal(hv); err == nil && a.verify(&h, req, path, nonce) {
			return nil
		}
		s.auth.failed.Add(1)
		s.guard.logRefused("rtsp player authentication failed", "path", path, "auth_failures", s.auth.failed.Load())
	} else {
		s.auth.challenged.Add(1)
	}
	return &base.Response{StatusCode: base.StatusUnauthorized, Header: base.Header{"WWW-Authenticate": a.challenge(nonce)}}
}

func (a *PlayerAuth) challenge(nonce string) base.HeaderValue {
	md5Alg := headers.AuthAlgorithmMD5
	v := headers.Authenticate{Method: headers.AuthMethodDigest, Realm: a.Realm, Nonce: nonce, Algorithm: &md5Alg}.Marshal()
	if a.Basic {
		v = append(v, headers.Authenticate{Method: headers.AuthMethodBasic, Realm: a.Realm}.Marshal()...)
	}
	return v
}

func (a *PlayerAuth) verify(h *headers.Authorization, req *base.Request, path, nonce string) bool {
	switch h.Method {
	case headers.AuthMethodDigest:
		if h.Algorithm != nil && *h.Algorithm != headers.AuthAlgorithmMD5 {
			return false
		}
		if h.Realm != a.Realm || h.Nonce != nonce || !sameRequestURI(req, h.URI) {
			return false
		}
		ha1, ok := a.HA1(h.Username, path)
		if !ok {
			return false
		}
		want := md5Hex(ha1 + ":" + nonce + ":" + md5Hex(string(req.Method)+":"+h.URI))
		return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(h.Response))) == 1
	case headers.AuthMethodBasic:
		if !a.Basic {
			return false
		}
		ha1, ok := a.HA1(h.Username, path)
		return ok && subtle.ConstantTimeCompare([]byte(ha1), []byte(HA1(h.Username, a.Realm, h.BasicPass))) == 1
	}
	return false
}

// sameRequestURI: the digest's uri names the request's resource (its path
// and query; clients differ in how they write the host). A SETUP may name
// the stream instead of the track (VLC).
func sameRequestURI(req *base.Request, uri string) bool {
	if req.URL == nil {
		return false
	}
	if uri == req.URL.String() {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	got := strings.TrimSuffix(u.Path, "/")
	want := strings.TrimSuffix(req.URL.Path, "/")
	if u.RawQuery != req.URL.RawQuery {
		return false
	}
	if got == want {
		return true
	}
	if req.Method == base.Setup {
		if i := strings.LastIndex(want, "/"); i > 0 && got == want[:i] {
			return true
		}
	}
	return false
}
