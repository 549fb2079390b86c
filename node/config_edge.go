package node

import (
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
