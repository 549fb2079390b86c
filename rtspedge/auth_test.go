package rtspedge

import (
	"bufio"
	"encoding/base64"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// TestPlayerAuthBasic: Basic credentials work only when PlayerAuth.Basic is
// set, and are checked against the HA1 like Digest.
func TestPlayerAuthBasic(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	synthRecording(t, st, "v", synthSpec{dur: time.Second, fps: 25, perFrame: 2, size: 200, gop: 25})
	for _, basic := range []bool{false, true} {
		auth := &PlayerAuth{Realm: "r", Basic: basic, HA1: func(user, _ string) (string, bool) {
			return HA1("alice", "r", "pw"), user == "alice"
		}}
		s := startServer(t, ServerConfig{Recordings: newTestRecordings(t, st), Auth: auth})
		describe := func(cred string) base.StatusCode {
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := "DESCRIBE " + serverURL(s, "v") + " RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic " +
				base64.StdEncoding.EncodeToString([]byte(cred)) + "\r\n\r\n"
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			var res base.Response
			if err := res.Unmarshal(bufio.NewReader(c)); err != nil {
				t.Fatal(err)
			}
			return res.StatusCode
		}
		want := base.StatusUnauthorized
		if basic {
			want = base.StatusOK
		}
		if got := describe("alice:pw"); got != want {
			t.Errorf("Basic=%v, right password: %d, want %d", basic, got, want)
		}
		if got := describe("alice:nope"); got != base.StatusUnauthorized {
			t.Errorf("Basic=%v, wrong password: %d", basic, got)
		}
	}
}
