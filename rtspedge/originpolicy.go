package rtspedge

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// maxRedirects is how many redirects in a row a DESCRIBE follows, even
// within the origin.
const maxRedirects = 5

// originPolicy keeps an origin session to its configured origin: gortsplib
// follows a DESCRIBE redirect anywhere and takes the credentials along
// (client.go, doDescribe), and answers a Basic challenge over any transport.
// Three guards, each enough on its own for what it covers:
//   - onResponse checks every redirect's Location before gortsplib follows it;
//   - dial refuses any address but the origin's, and every address once a
//     redirect was refused, so no byte (credentials least of all) reaches
//     another host whatever gortsplib does;
//   - onRequest removes an Authorization header that must not leave: Basic
//     over plain rtsp:// unless allowed, and anything after a refusal.
//
// The first refusal is kept and becomes the session's error
// (ErrOriginPolicy).
type originPolicy struct {
	scheme string // of the configured origin URL
	addr   string // its host:port, port explicit, as gortsplib dials it
	req    *OriginRequest
	o      *OriginSession

	// Guarded by o.mu.
	redirects int
	refused   error
}

func newOriginPolicy(o *OriginSession, u *base.URL) *originPolicy {
	return &originPolicy{scheme: u.Scheme, addr: dialAddr(u.Scheme, u.Host), req: &o.req, o: o}
}

// dialAddr is host:port with the scheme's default port, as gortsplib's
// connOpen dials it, with the host lower-cased.
func dialAddr(scheme, host string) string {
	u := url.URL{Host: host}
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func defaultPort(scheme string) string {
	if scheme == "rtsps" {
		return "322"
	}
	return "554"
}

// refusedErr is the first refusal, nil while there is none.
func (p *originPolicy) refusedErr() error {
	p.o.mu.Lock()
	defer p.o.mu.Unlock()
	return p.refused
}

// refuseLocked records the first refusal and logs it. o.mu must be held.
func (p *originPolicy) refuseLocked(why string, args ...any) {
	if p.refused != nil {
		return
	}
	p.refused = fmt.Errorf("origin %s: %w: %s", p.o.display, ErrOriginPolicy, fmt.Sprintf(why, args...))
	p.o.log.Warn("origin refused by policy", "reason", fmt.Sprintf(why, args...))
}

// dial is the client's DialContext: only the configured origin's address,
// and nothing once a refusal was recorded.
func (p *originPolicy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", addr, err)
	}
	got := net.JoinHostPort(strings.ToLower(host), port)
	p.o.mu.Lock()
	if p.refused == nil && got != p.addr {
		p.refuseLocked("dial %s refused: not the configured origin %s", got, p.addr)
	}
	refused := p.refused
	p.o.mu.Unlock()
	if refused != nil {
		return nil, refused
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil && p.o.req.WrapConn != nil {
		c = p.o.req.WrapConn(c)
	}
	return c, err
}

// checkRedirect runs on every response to DESCRIBE before gortsplib acts on
// it. o.mu must be held.
func (p *originPolicy) checkRedirectLocked(res *base.Response) {
	if res.StatusCode < base.StatusMovedPermanently || res.StatusCode > base.StatusUseProxy {
		return
	}
	loc := res.Header["Location"]
	if len(loc) != 1 {
		return // gortsplib follows only a single Location
	}
	shown := redactURL(loc[0])
	p.redirects++
	lu, err := url.Parse(loc[0])
	switch {
	case p.req.RefuseRedirects:
		p.refuseLocked("redirect %d to %s refused: redirects are refused for this origin", res.StatusCode, shown)
	case err != nil || lu.Host == "":
		p.refuseLocked("redirect %d to %q refused: not an absolute rtsp URL", res.StatusCode, shown)
	case lu.Scheme != p.scheme || dialAddr(lu.Scheme, lu.Host) != p.addr:
		p.refuseLocked("redirect %d to %s refused: only redirects within %s://%s are followed",
			res.StatusCode, shown, p.scheme, p.addr)
	case p.redirects > maxRedirects:
		p.refuseLocked("redirect %d to %s refused: more than %d redirects", res.StatusCode, shown, maxRedirects)
	default:
		p.o.log.Info("origin redirect followed", "status", int(res.StatusCode), "location", shown)
	}
}

// checkAuthLocked removes an Authorization header that must not be sent.
// o.mu must be held.
func (p *originPolicy) checkAuthLocked(req *base.Request) {
	v := req.Header["Authorization"]
	if len(v) == 0 {
		return
	}
	if p.refused == nil && p.scheme == "rtsp" && !p.req.AllowBasicOverPlain &&
		strings.HasPrefix(strings.ToLower(strings.TrimSpace(v[0])), "basic") {
		p.refuseLocked("the origin asks for Basic authentication over plain rtsp://, which would send the password " +
			"in clear text; use Digest or rtsps://, or allow it for this origin (allow_basic_over_plain)")
	}
	if p.refused != nil {
		delete(req.Header, "Authorization")
	}
}
