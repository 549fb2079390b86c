package node

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/rtspmesh/rtspmesh/rtspedge"
)

// defaultPorts are the ports a stream key spells out when the URL omits them.
var defaultPorts = map[string]string{"rtsp": "554", "rtsps": "322"}

// hostName is what a key accepts as a host besides an IP literal.
var hostName = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$`)

// CanonicalKey is the stream key of an origin URL (DESIGN.md §3): the
// scheme, the lower-cased host, an explicit port (554 for rtsp, 322 for
// rtsps), the path with dot segments resolved and its escaping normalised,
// and the query sorted by name; user info and fragment are dropped.
// Two URLs that name the same stream give the same key.
func CanonicalKey(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL, credentials included: say less.
		return "", fmt.Errorf("stream URL %q is not a valid URL", RedactURL(rawURL))
	}
	defPort, ok := defaultPorts[u.Scheme]
	if !ok || u.Opaque != "" {
		return "", fmt.Errorf("stream URL %q: want rtsp:// or rtsps://", RedactURL(rawURL))
	}
	host, err := canonicalHost(u.Hostname())
	if err != nil {
		return "", fmt.Errorf("stream URL %q: %w", RedactURL(rawURL), err)
	}
	port := u.Port()
	if port == "" {
		port = defPort
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("stream URL %q: port %q is not 1-65535", RedactURL(rawURL), port)
	}
	p, err := canonicalPath(u.EscapedPath())
	if err != nil {
		return "", fmt.Errorf("stream URL %q: %w", RedactURL(rawURL), err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("stream URL %q: malformed query", RedactURL(rawURL))
	}
	key := u.Scheme + "://" + host + ":" + strconv.Itoa(n) + p
	if len(q) > 0 {
		key += "?" + q.Encode()
	}
	return key, nil
}

func canonicalHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return "", errors.New("an IPv6 zone cannot be part of a stream key")
		}
		if ip.Is6() && !ip.Is4In6() {
			return "[" + ip.String() + "]", nil
		}
		return ip.Unmap().String(), nil
	}
	if !hostName.MatchString(h) {
		return "", fmt.Errorf("host %q is not a host name or IP address", h)
	}
	return h, nil
}

// canonicalPath normalises an escaped path: each segment is unescaped and
// escaped again the one canonical way, then dot segments are resolved.
func canonicalPath(escaped string) (string, error) {
	segs := strings.Split(escaped, "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return "", errors.New("malformed %-escape in path")
		}
		segs[i] = escapeSegment(d)
	}
	p := path.Clean("/" + strings.Join(segs, "/"))
	return p, nil
}

// escapeSegment escapes every byte of a path segment except RFC 3986
// unreserved characters, sub-delims, ':' and '@'.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// RedactURL removes user info from a URL for printing. It works on the text
// and never fails, so it also hides credentials in a malformed URL: the part
// from "://" to the last '@' before any '?' is dropped (a path containing
// '@' loses its start; hiding wins over showing).
func RedactURL(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
	}
	end := len(s)
	if i := strings.IndexByte(s[start:], '?'); i >= 0 {
		end = start + i
	}
	at := strings.LastIndexByte(s[start:end], '@')
	if at < 0 {
		return s
	}
	return s[:start] + s[start+at+1:]
}

// MapPath maps a player's request path "<origin-name>/<path>[?query]" (a
// leading '/' is allowed) to the origin URL to dial (with the origin's
// credentials) and the stream key (without). The query reaches the origin
// and the key only when the origin's pass_query is set; otherwise it is
// dropped, so "?cb=N" names the same stream as no query. Only configured origins are
// reachable: an unknown name wraps rtspedge.ErrUnknownOrigin (404); a path that is
// empty or could escape the origin (dot segments, encoded or back slashes,
// control characters, an absolute URL) wraps rtspedge.ErrBadPath (400).
//
// requestPath is read as an escaped URL path and unescaped once here.
// gortsplib hands servers the already unescaped path; unescaping it again is
// safe (every check runs on the final form, and "%2F" is refused) but a
// name with a literal '%' then needs it escaped twice. Pass the escaped
// path where it is at hand.
func MapPath(origins []Origin, requestPath string) (originURL, key string, err error) {
	_, originURL, key, err = mapPath(origins, requestPath)
	return originURL, key, err
}

// mapPath is MapPath that also returns the origin.
func mapPath(origins []Origin, requestPath string) (origin *Origin, originURL, key string, err error) {
	raw, rawQuery, _ := strings.Cut(strings.TrimPrefix(requestPath, "/"), "?")
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", rtspedge.ErrBadPath, requestPath, why)
	}
	lower := strings.ToLower(raw)
	switch {
	case raw == "":
		return nil, "", "", bad("empty")
	case strings.ContainsAny(raw, "\\#") || strings.Contains(lower, "%5c"):
		return nil, "", "", bad("backslash or '#'")
	case strings.Contains(lower, "%2f"):
		return nil, "", "", bad("encoded slash")
	}
	segs := strings.Split(raw, "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, "", "", bad("malformed %-escape")
		}
		switch {
		case d == "":
			return nil, "", "", bad("empty segment")
		case d == "." || d == "..":
			return nil, "", "", bad("dot segment")
		case strings.ContainsFunc(d, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return nil, "", "", bad("control character")
		}
		segs[i] = d
	}
	if strings.Contains(strings.Join(segs, "/"), "://") {
		return nil, "", "", bad("absolute URL")
	}
	for i := range origins {
		if origins[i].Name == segs[0] {
			origin = &origins[i]
			break
		}
	}
	if origin == nil {
		return nil, "", "", fmt.Errorf("%w %q", rtspedge.ErrUnknownOrigin, segs[0])
	}
	if len(segs) < 2 {
		return nil, "", "", bad("no stream path after the origin name")
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil || strings.ContainsAny(rawQuery, "#") {
		return nil, "", "", bad("malformed query")
	}
	base, err := url.Parse(origin.URL)
	if err != nil || base.Host == "" {
		return nil, "", "", fmt.Errorf("origin %q: url %q is not valid", origin.Name, RedactURL(origin.URL))
	}
	for i := 1; i < len(segs); i++ {
		segs[i] = escapeSegment(segs[i])
	}
	p := strings.TrimSuffix(base.EscapedPath(), "/") + "/" + strings.Join(segs[1:], "/")
	q := base.RawQuery
	if len(query) > 0 && origin.PassQuery {
		if q != "" {
			q += "&"
		}
		q += query.Encode()
	}
	plain := base.Scheme + "://" + base.Host + p
	if q != "" {
		plain += "?" + q
	}
	key, err = CanonicalKey(plain)
	if err != nil {
		return nil, "", "", fmt.Errorf("origin %q: %w", origin.Name, err)
	}
	userinfo := ""
	switch {
	case origin.Username != "":
		userinfo = url.UserPassword(origin.Username, origin.Password).String() + "@"
	case base.User != nil:
		userinfo = base.User.String() + "@"
	}
	return origin, base.Scheme + "://" + userinfo + base.Host + strings.TrimPrefix(plain, base.Scheme+"://"+base.Host), key, nil
}
