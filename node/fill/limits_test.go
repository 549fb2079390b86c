package fill

import (
	"errors"
	"testing"

	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// TestFillCaps: a new fill is refused past MaxFillsPerClient for its
// client and past MaxFills in all; joining a running fill is not; a
// prefetch (no client) counts only against MaxFills; a fill that ended
// frees its place.
func TestFillCaps(t *testing.T) {
	clip := origin.SampleClip()
	o := startOrigin(t, origin.Config{Media: map[string][]byte{"a.ts": clip, "b.ts": clip, "c.ts": clip}})
	h := newHarness(t, func(c *Config) { c.MaxFills, c.MaxFillsPerClient = 2, 1 })
	req := func(path, client string) Request {
		url := "rtsp://" + o.Addr() + "/" + path
		return Request{Key: url, Origin: rtspedge.OriginRequest{URL: url}, Client: client}
	}
	a, err := h.Open(t.Context(), req("a.ts", "10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Open(t.Context(), req("b.ts", "10.0.0.1")); !errors.Is(err, ErrTooManyFillsForClient) {
		t.Fatalf("second fill of one client: %v, want ErrTooManyFillsForClient", err)
	}
	if !errors.Is(ErrTooManyFillsForClient, rtspedge.ErrOverLimit) {
		t.Fatal("the bound does not match rtspedge.ErrOverLimit (503)")
	}
	tail, err := h.Open(t.Context(), req("a.ts", "10.0.0.1"))
	if err != nil || tail.Served() != ServedTail {
		t.Fatalf("joining the running fill: %v", err)
	}
	tail.Release()
	b, err := h.Open(t.Context(), req("b.ts", ""))
	if err != nil {
		t.Fatalf("a prefetch under MaxFills: %v", err)
	}
	if _, err := h.Open(t.Context(), req("c.ts", "10.0.0.2")); !errors.Is(err, ErrTooManyFills) {
		t.Fatalf("third fill: %v, want ErrTooManyFills", err)
	}
	a.Release() // complete_on_abandon off: the fill stops and frees its place
	b.Release()
	<-h.ended
	<-h.ended
	c, err := h.Open(t.Context(), req("c.ts", "10.0.0.1"))
	if err != nil {
		t.Fatalf("after the fills ended: %v", err)
	}
	c.Release()
}
