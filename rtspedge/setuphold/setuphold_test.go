package setuphold

import (
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

func TestLift(t *testing.T) {
	for _, c := range []struct {
		method base.Method
		ua     base.HeaderValue
		lifted bool
	}{
		{base.Setup, base.HeaderValue{"GStreamer/1.22.0"}, true},
		{base.Setup, base.HeaderValue{"Lavf59.27.100"}, false},
		{base.Setup, nil, false},
		{base.Setup, base.HeaderValue{"GStreamer/1.22.0", "other"}, false}, // gortsplib holds only one
		{base.Describe, base.HeaderValue{"GStreamer/1.22.0"}, false},
		{base.Play, base.HeaderValue{"GStreamer/1.22.0"}, false},
	} {
		req := &base.Request{Method: c.method, Header: base.Header{"CSeq": base.HeaderValue{"3"}}}
		if c.ua != nil {
			req.Header["User-Agent"] = c.ua
		}
		got := Lift(req)
		_, left := req.Header["User-Agent"]
		switch {
		case c.lifted && (got != c.ua[0] || left):
			t.Errorf("%s %q: Lift = %q, User-Agent left: %v; want it taken off", c.method, c.ua, got, left)
		case !c.lifted && (got != "" || left != (c.ua != nil)):
			t.Errorf("%s %q: Lift = %q, User-Agent left: %v; want the request as it was", c.method, c.ua, got, left)
		}
		if len(req.Header["CSeq"]) != 1 {
			t.Errorf("%s: CSeq gone", c.method)
		}
	}
}
