package node

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Browser attacks on the admin API (issue 13).
//
// DNS rebinding: a page on attacker.example whose name then resolves to
// 127.0.0.1 reaches the API "same-origin" from the browser's point of view,
// but its requests carry Host: attacker.example. So every request's Host
// must name this listener: its address, localhost/127.0.0.1/[::1] with its
// port when it listens on loopback, any IP literal with its port when it
// listens on every interface (an IP literal cannot be rebound), or a name
// in admin.hosts (with or without a port).
//
// Cross-site requests: a page elsewhere can POST to the API (a "simple"
// text/plain request needs no preflight). State-changing requests (anything
// but GET, HEAD and OPTIONS) are refused when the browser says they are
// cross-origin: an Origin header that is not this Host (browsers send it
// with every cross-origin POST, simple requests included), or Sec-Fetch-Site
// other than same-origin or none. Clients that are not browsers (the CLI,
// curl) send neither header. The bearer token (admin.token) is required on
// top, when set; the API never answers CORS preflights, so a cross-origin
// page cannot send it.

// hostGuard decides which Host headers name this admin listener.
type hostGuard struct {
	port     string          // the bound port
	ip       netip.Addr      // the bound address; unspecified for a wildcard
	loopback bool            // bound to a loopback address
	names    map[string]bool // admin.hosts without a port, lower-case
	hostPort map[string]bool // admin.hosts with a port, lower-case
}

func newHostGuard(bound net.Addr, hosts []string) *hostGuard {
	g := &hostGuard{names: map[string]bool{}, hostPort: map[string]bool{}}
	if ap, err := netip.ParseAddrPort(bound.String()); err == nil {
		g.ip = ap.Addr().Unmap()
		g.port = strconv.Itoa(int(ap.Port()))
		g.loopback = g.ip.IsLoopback()
	}
	for _, h := range hosts {
		h = strings.ToLower(h)
		if _, _, err := net.SplitHostPort(h); err == nil {
			g.hostPort[h] = true
		} else {
			g.names[strings.Trim(h, "[]")] = true
		}
	}
	return g
}

// allows reports whether a request's Host header names this listener. An
// HTTP/1.0 request may have none: no browser sends such a request.
func (g *hostGuard) allows(hostHeader string) bool {
	if hostHeader == "" {
		return true
	}
	hostHeader = strings.ToLower(hostHeader)
	if g.hostPort[hostHeader] {
		return true
	}
	host, port, err := net.SplitHostPort(hostHeader)
	if err != nil {
		host, port = strings.Trim(hostHeader, "[]"), ""
	}
	if g.names[host] {
		return true
	}
	if port != g.port {
		return false
	}
	if host == "localhost" {
		return g.loopback || g.ip.IsUnspecified()
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	switch {
	case g.ip.IsUnspecified():
		return true
	case g.loopback:
		return ip.IsLoopback()
	}
	return ip == g.ip
}

// guarded refuses requests for another Host and cross-origin requests that
// change state, before routing or the token check.
func (a *adminServer) guarded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.hosts.allows(r.Host) {
			a.refused.Add(1)
			writeError(w, http.StatusMisdirectedRequest,
				"Host %q does not name this admin API; use its address, or add the name to admin.hosts", r.Host)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if why := crossOrigin(r); why != "" {
				a.refused.Add(1)
				a.log.Info("cross-origin admin request refused", "method", r.Method, "path", r.URL.Path, "why", why)
				writeError(w, http.StatusForbidden, "cross-origin request refused: %s", why)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// crossOrigin says why a browser request comes from another origin, or "".
func crossOrigin(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site: " + site
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return ""
	}
	u, err := url.Parse(o)
	if err != nil || o == "null" || !strings.EqualFold(u.Host, r.Host) || (u.Scheme != "http" && u.Scheme != "https") {
		return "Origin " + o + " is not " + r.Host
	}
	return ""
}
