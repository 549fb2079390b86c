package rtspedge

import (
	"context"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v4"
)

// Client says who asked Recordings.Open: the player's IP address and its
// RTSP connection. The server puts it in Open's context (ClientFrom reads
// it), so the resolver can bound requests and fills per address and per
// connection.
type Client struct {
	Addr string // the player's IP address, without port
	Conn uint64 // unique per RTSP connection within the process, never 0
}

type clientKey struct{}

// connIDs numbers RTSP connections.
var connIDs atomic.Uint64

// ClientFrom returns the client a Recordings.Open context carries.
func ClientFrom(ctx context.Context) (Client, bool) {
	c, ok := ctx.Value(clientKey{}).(Client)
	return c, ok
}

// WithClient returns ctx carrying c (for callers of Recordings.Open other
// than the server, and tests).
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// clientOf names the player behind an RTSP connection.
func clientOf(sc *gortsplib.ServerConn, id uint64) Client {
	return Client{Addr: addrKey(sc.NetConn().RemoteAddr()), Conn: id}
}
