// Package setuphold keeps gortsplib's server from holding back the SETUP
// answers of GStreamer players.
//
// gortsplib v4.16.2 answers every SETUP whose User-Agent starts with
// "GStreamer" one second late (server_session.go: a workaround for
// rtspclientsink, GStreamer's publisher, which could miss the answer). It
// does so for players too: rtspsrc sends a SETUP per track, one after the
// other, so a GStreamer pipeline (or an NVR built on one) playing video and
// audio from an rtspmesh node started 2 s late, and its first frame's
// timestamp was 2 s in, where gst-rtsp-server's is 0.1 s. rtspmesh's servers
// accept no publisher (no ANNOUNCE, no RECORD), so the workaround has
// nothing to do there.
package setuphold

import (
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// Lift takes the User-Agent off req, a request as a server's OnRequest
// sees it, when it is a SETUP from GStreamer, so that gortsplib answers it
// at once; it returns the user agent it took off ("" when none). Every
// other request is left as it is.
func Lift(req *base.Request) string {
	if req.Method != base.Setup {
		return ""
	}
	ua, ok := req.Header["User-Agent"]
	if !ok || len(ua) != 1 || !strings.HasPrefix(ua[0], "GStreamer") {
		return ""
	}
	delete(req.Header, "User-Agent")
	return ua[0]
}
