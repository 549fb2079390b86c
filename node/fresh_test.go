package node_test

import (
	"bufio"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// describeWith sends one DESCRIBE for url with the extra headers and
// returns the answer.
func describeWith(t *testing.T, url string, headers map[string]string) *base.Response {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := base.Request{Method: base.Describe, URL: u, Header: base.Header{"CSeq": base.HeaderValue{"1"}}}
	for k, v := range headers {
		req.Header[k] = base.HeaderValue{v}
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	var res base.Response
	if err := res.Unmarshal(bufio.NewReader(conn)); err != nil {
		t.Fatalf("DESCRIBE %s: %v", url, err)
	}
	return &res
}

// waitStale polls until n's recording of path is stale by its origin's
// policy (max_age is tiny in these tests).
func waitStale(t *testing.T, n *testNode, cfg node.Config, key string) {
	t.Helper()
	pol := cfg.Origins[0].Policy()
	testkit.Eventually(t, 20*time.Second, "the recording turns stale", func() bool {
		m, err := n.Store().Manifest(key)
		return err == nil && m.State == store.StateComplete && !pol.Fresh(m.Freshness, time.Now())
	})
}

func maxAge(d time.Duration) *node.Duration { v := node.Duration(d); return &v }

// TestFreshReplacedAtOrigin: the built-in origin (Last-Modified, 304 to
// If-Modified-Since) replaces the file behind a path. After max_age, a
// player on A, and on B which first held the old recording via the mesh,
// decodes the new file; a later stale hit gets 304 and is served from the
// store.
func TestFreshReplacedAtOrigin(t *testing.T) {
	t.Parallel()
	oldClip, newClip := sourceClip(t, "testsrc2", 2*time.Second), sourceClip(t, "smptebars", 2*time.Second)
	org := startOrigin(t, func(c *origin.Config) { c.Media = map[string][]byte{"sample.ts": oldClip} })
	// Long enough for B to adopt A's copy while it is fresh (a node never
	// adopts a peer copy its own policy calls stale), short for a test.
	fresh := func(c *node.Config) { c.Origins[0].MaxAge = maxAge(6 * time.Second) }
	a := meshNode(t, org, fresh)
	b := meshNode(t, org, fresh, a)
	cfg := nodeConfig(t, org)
	fresh(&cfg)
	key := storeKey(t, org)

	direct := frameMD5(t, "rtsp://"+org.Addr()+"/sample.ts", "tcp")
	sameFrames(t, "A before", frameMD5(t, a.url(samplePath), "tcp"), direct)
	waitComplete(t, a)
	sameFrames(t, "B before (from A)", frameMD5(t, b.url(samplePath), "tcp"), direct)
	if in := waitComplete(t, b); in.Source == store.SourceOrigin {
		t.Fatalf("B filled from the origin, want from A")
	}

	if err := org.Replace("sample.ts", newClip, time.Now().Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	replaced := frameMD5(t, "rtsp://"+org.Addr()+"/sample.ts", "tcp")
	if len(replaced) > 0 && len(direct) > 0 && replaced[0] == direct[0] {
		t.Fatal("the two clips decode alike; the test cannot tell them apart")
	}
	waitStale(t, a, cfg, key)
	waitStale(t, b, cfg, key)
	var onA, onB []string
	var wg sync.WaitGroup
	wg.Go(func() { onA = frameMD5(t, a.url(samplePath), "tcp") })
	wg.Go(func() { onB = frameMD5(t, b.url(samplePath), "tcp") })
	wg.Wait()
	sameFrames(t, "A after the origin replaced the file", onA, replaced)
	sameFrames(t, "B after the origin replaced the file", onB, replaced)
	for name, n := range map[string]*testNode{"A": a, "B": b} {
		if st := n.FreshStats(); st.Changed != 1 {
			t.Errorf("%s: %+v, want one change", name, st)
		}
	}

	// Unchanged since: the next stale hit is a 304 and plays from the store.
	waitCompleteAt(t, a, samplePath)
	waitStale(t, a, cfg, key)
	_, plays := org.Sessions("sample.ts")
	sameFrames(t, "A after a 304", frameMD5(t, a.url(samplePath), "tcp"), replaced)
	if st := a.FreshStats(); st.NotModified != 1 {
		t.Errorf("A: %+v, want one 304", st)
	}
	if _, after := org.Sessions("sample.ts"); after != plays {
		t.Errorf("the origin played %d more sessions after a 304, want 0", after-plays)
	}
	if m, err := a.Store().Manifest(key); err != nil || !cfg.Origins[0].Policy().Fresh(m.Freshness, time.Now()) {
		t.Errorf("after a 304 the recording is not fresh again: %+v, %v", m.Freshness, err)
	}
}
