package node

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rtspmesh/rtspmesh/rtspedge"
)

// Player-side limits (issue 13): connection and session caps and timeouts.

func (c *Config) validateLimits(bad complain) {
	r := c.RTSP
	positive(bad, "rtsp.request_timeout", r.RequestTimeout, "10s")
	positive(bad, "rtsp.idle_timeout", r.IdleTimeout, "60s")
	for _, l := range []struct {
		key     string
		v       int
		example int
	}{
		{"rtsp.max_connections", r.MaxConnections, rtspedge.DefaultMaxConns},
		{"rtsp.max_connections_per_address", r.MaxConnectionsPerAddress, rtspedge.DefaultMaxConnsPerAddr},
		{"rtsp.max_sessions", r.MaxSessions, rtspedge.DefaultMaxSessions},
		{"rtsp.max_sessions_per_address", r.MaxSessionsPerAddress, rtspedge.DefaultMaxSessionsPerAddr},
	} {
		if l.v <= 0 {
			bad(l.key, "%d must be positive; write e.g. %d", l.v, l.example)
		}
	}
}

// limits are the RTSP server's limits from the config.
func (r RTSPConfig) limits() rtspedge.Limits {
	return rtspedge.Limits{
		RequestTimeout:     time.Duration(r.RequestTimeout),
		IdleTimeout:        time.Duration(r.IdleTimeout),
		MaxConns:           r.MaxConnections,
		MaxConnsPerAddr:    r.MaxConnectionsPerAddress,
		MaxSessions:        r.MaxSessions,
		MaxSessionsPerAddr: r.MaxSessionsPerAddress,
	}
}

// PlayerAuthConfig is player authentication: RTSP Digest with the users
// listed; off while Users is empty.
type PlayerAuthConfig struct {
	Realm string       `yaml:"realm"` // part of every ha1; default "rtspmesh"
	Basic bool         `yaml:"basic"` // also accept Basic (clear-text password on the wire); default false
	Users []PlayerUser `yaml:"users"`
}

// PlayerUser is one player account. Its secret is the HA1 (hex MD5 of
// "name:realm:password"), or a password from RTSPMESH_PLAYER_<NAME>_PASSWORD.
type PlayerUser struct {
	Name     string `yaml:"name"`
	HA1      string `yaml:"ha1,omitempty"`
	Password string `yaml:"-"` // from the environment only
}

func (c *Config) setPlayerPassword(name, value string) bool {
	for i := range c.RTSP.Auth.Users {
		u := &c.RTSP.Auth.Users[i]
		if name == EnvPrefix+"PLAYER_"+envSegment(u.Name)+"_PASSWORD" {
			u.Password = value
			return true
		}
	}
	return false
}

// envSegment is a name as it appears in a variable name.
func envSegment(name string) string {
	return strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(name))
}

var reHA1 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (c *Config) validateAuth(bad complain) {
	a := c.RTSP.Auth
	if a.Realm == "" || strings.ContainsAny(a.Realm, "\"\\\r\n") {
		bad("rtsp.auth.realm", "%q: write a name without quotes, e.g. \"rtspmesh\"", a.Realm)
	}
	seen := map[string]bool{}
	for i, u := range a.Users {
		key := fmt.Sprintf("rtsp.auth.users[%d]", i)
		switch {
		case u.Name == "" || strings.ContainsAny(u.Name, ":\"\\ \r\n"):
			bad(key+".name", "%q: write a user name without ':', quotes or spaces", u.Name)
		case seen[u.Name]:
			bad(key+".name", "%q is listed twice", u.Name)
		}
		seen[u.Name] = true
		switch {
		case u.HA1 != "" && u.Password != "":
			bad(key+".ha1", "user %q has both an ha1 and %sPLAYER_%s_PASSWORD; keep one", u.Name, EnvPrefix, envSegment(u.Name))
		case u.HA1 == "" && u.Password == "":
			bad(key+".ha1", "user %q has no password hash; write ha1: the hex MD5 of \"%s:%s:<password>\" (printf '%%s' '%s:%s:<password>' | md5sum), or set %sPLAYER_%s_PASSWORD",
				u.Name, u.Name, a.Realm, u.Name, a.Realm, EnvPrefix, envSegment(u.Name))
		case u.HA1 != "" && !reHA1.MatchString(u.HA1):
			bad(key+".ha1", "user %q: %d characters; an ha1 is 32 lower-case hex digits", u.Name, len(u.HA1))
		}
	}
	for i, o := range c.Origins {
		for _, p := range o.Players {
			if !seen[p] {
				bad(fmt.Sprintf("origins[%d].players", i), "%q is not a user of rtsp.auth.users", p)
			}
		}
	}
}

// playerAuth is the RTSP server's authentication; nil while no user is
// configured.
func (c *Config) playerAuth() *rtspedge.PlayerAuth {
	a := c.RTSP.Auth
	if len(a.Users) == 0 {
		return nil
	}
	ha1 := make(map[string]string, len(a.Users))
	for _, u := range a.Users {
		ha1[u.Name] = u.HA1
		if u.HA1 == "" {
			ha1[u.Name] = rtspedge.HA1(u.Name, a.Realm, u.Password)
		}
	}
	allowed := make(map[string][]string, len(c.Origins))
	for _, o := range c.Origins {
		allowed[o.Name] = o.Players
	}
	return &rtspedge.PlayerAuth{
		Realm: a.Realm,
		Basic: a.Basic,
		HA1: func(user, path string) (string, bool) {
			h, ok := ha1[user]
			if !ok {
				return "", false
			}
			name, _, _ := strings.Cut(path, "/")
			if players, known := allowed[name]; known && len(players) > 0 && !slices.Contains(players, user) {
				return "", false
			}
			return h, true
		},
	}
}
