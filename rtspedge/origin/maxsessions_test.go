package origin

import (
	"errors"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// TestMaxSessionsRefusesSecond: with MaxSessions 1 a second concurrent
// session of a path is refused with 453 and counted; once the first closes,
// the path takes a session again, and other paths are not affected.
func TestMaxSessionsRefusesSecond(t *testing.T) {
	t.Parallel()
	o := startOrigin(t, Config{
		Media:       map[string][]byte{"a.ts": SampleClip(), "b.ts": SampleClip()},
		MaxSessions: 1,
	})
	setup := func(path string) (*gortsplib.Client, error) {
		u, err := base.ParseURL("rtsp://" + o.Addr() + "/" + path)
		if err != nil {
			t.Fatal(err)
		}
		tcp := gortsplib.TransportTCP
		c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
		if err := c.Start2(); err != nil {
			t.Fatal(err)
		}
		desc, _, err := c.Describe(u)
		if err == nil {
			err = c.SetupAll(desc.BaseURL, desc.Medias)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	first, err := setup("a.ts")
	if err != nil {
		t.Fatal(err)
	}
	_, err = setup("a.ts")
	var bad liberrors.ErrClientBadStatusCode
	if !errors.As(err, &bad) || bad.Code != base.StatusNotEnoughBandwidth {
		t.Fatalf("second session: %v, want 453", err)
	}
	other, err := setup("b.ts")
	if err != nil {
		t.Fatalf("another path: %v", err)
	}
	other.Close()
	if refused, open := o.Refused("a.ts"); refused != 1 || open != 1 {
		t.Fatalf("refused %d, open %d; want 1, 1", refused, open)
	}
	first.Close()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for _, open := o.Refused("a.ts"); open != 0; _, open = o.Refused("a.ts") {
		select {
		case <-deadline:
			t.Fatal("the first session still counts 5 s after it closed")
		case <-tick.C:
		}
	}
	again, err := setup("a.ts")
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
