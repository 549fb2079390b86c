package node_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// describeWith sends one DESCRIBE for url with the extra headers and
// returns the answer.
func describeWith(t testing.TB, url string, headers map[string]string) *base.Response {
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
	// Both nodes have the same config: the one that pulls from the origin
	// (the stream's designated filler) is called A.
	nodes := fillerFirst(t, org, samplePath, a, b)
	a, b = nodes[0], nodes[1]
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

// TestFreshStaleIfError: with the origin stopped, a stale hit is served with
// a Warning when stale_if_error (the default), and refused with 503 when
// it is off.
func TestFreshStaleIfError(t *testing.T) {
	t.Parallel()
	org, stopOrigin := startOriginStoppable(t, func(c *origin.Config) {
		c.Media = map[string][]byte{"sample.ts": shortClip(t, time.Second)}
	})
	cfg := nodeConfig(t, org)
	cfg.Origins[0].MaxAge = maxAge(time.Second)
	strict := cfg
	strict.DataDir = t.TempDir()
	strict.Origins = []node.Origin{cfg.Origins[0]}
	off := false
	strict.Origins[0].StaleIfError = &off
	n, s := startNode(t, cfg), startNode(t, strict)
	for _, x := range []*testNode{n, s} {
		if err := firstPacket(t.Context(), x.url(samplePath)); err != nil {
			t.Fatal(err)
		}
		waitComplete(t, x)
	}
	stopOrigin()
	key := storeKey(t, org)
	waitStale(t, n, cfg, key)
	waitStale(t, s, strict, key)

	res := describeWith(t, n.url(samplePath), nil)
	if res.StatusCode != base.StatusOK || len(res.Header["Warning"]) != 1 || !strings.Contains(res.Header["Warning"][0], "Response is stale") {
		t.Fatalf("stale_if_error: %d %s, Warning %q; want 200 with Warning 110", res.StatusCode, res.StatusMessage, res.Header["Warning"])
	}
	if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
		t.Fatalf("stale recording does not play: %v", err)
	}
	if st := n.FreshStats(); st.Stale < 1 {
		t.Errorf("%+v, want stale counted", st)
	}
	res = describeWith(t, s.url(samplePath), nil)
	if res.StatusCode != base.StatusServiceUnavailable || res.StatusMessage != "Origin Unreachable" {
		t.Fatalf("stale_if_error false: %d %s, want 503 Origin Unreachable", res.StatusCode, res.StatusMessage)
	}
	// A player that asks only-if-cached gets what the node holds, said to
	// be stale, without a revalidation.
	before := s.FreshStats().Revalidations
	res = describeWith(t, s.url(samplePath), map[string]string{"Cache-Control": "only-if-cached"})
	if res.StatusCode != base.StatusOK || len(res.Header["Warning"]) != 1 {
		t.Fatalf("only-if-cached, stale: %d %s, Warning %q; want 200 with the warning", res.StatusCode, res.StatusMessage, res.Header["Warning"])
	}
	if after := s.FreshStats().Revalidations; after != before {
		t.Fatalf("only-if-cached revalidated with the origin (%d)", after-before)
	}
}

// TestFreshOnlyIfCached: a player's only-if-cached gets 504 for a stream
// neither the node nor a peer holds, without the origin hearing of it,
// and the stored recording once there is one.
func TestFreshOnlyIfCached(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Media = map[string][]byte{"sample.ts": shortClip(t, time.Second)}
	})
	a := meshNode(t, org, nil)
	b := meshNode(t, org, nil, a)
	// A pulls from the origin (it is the stream's designated filler), so
	// that B holds nothing until it asks.
	nodes := fillerFirst(t, org, samplePath, a, b)
	a, b = nodes[0], nodes[1]
	only := map[string]string{"Cache-Control": "only-if-cached"}
	res := describeWith(t, a.url(samplePath), only)
	if res.StatusCode != base.StatusGatewayTimeout {
		t.Fatalf("only-if-cached miss: %d %s, want 504", res.StatusCode, res.StatusMessage)
	}
	if describes, _ := org.Sessions("sample.ts"); describes != 0 {
		t.Fatalf("only-if-cached miss reached the origin (%d DESCRIBE)", describes)
	}
	if err := firstPacket(t.Context(), a.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	waitComplete(t, a)
	if res := describeWith(t, a.url(samplePath), only); res.StatusCode != base.StatusOK {
		t.Fatalf("only-if-cached hit: %d %s, want 200", res.StatusCode, res.StatusMessage)
	}
	describes, _ := org.Sessions("sample.ts")
	// B holds nothing; its neighbour A does.
	if res := describeWith(t, b.url(samplePath), only); res.StatusCode != base.StatusOK {
		t.Fatalf("only-if-cached on B (A holds it): %d %s, want 200", res.StatusCode, res.StatusMessage)
	}
	if in := waitComplete(t, b); in.Source == store.SourceOrigin {
		t.Fatal("B filled from the origin for only-if-cached")
	}
	if after, _ := org.Sessions("sample.ts"); after != describes {
		t.Fatalf("only-if-cached on B reached the origin (%d DESCRIBE)", after-describes)
	}
}

// TestFreshCacheControlOverride: cache_control_override replaces the
// origin's Cache-Control both ways: an origin's no-cache stream with
// "max-age=3600" is stored, a stream the origin says nothing about with
// "no-store" is relayed and never stored.
func TestFreshCacheControlOverride(t *testing.T) {
	t.Parallel()
	clip := shortClip(t, time.Second)
	for _, tc := range []struct {
		origin, override string
		stored           bool
	}{
		{origin: "no-cache", override: "max-age=3600", stored: true},
		{origin: "", override: "no-store", stored: false},
		{origin: "no-cache", override: "", stored: false},
	} {
		org := startOrigin(t, func(c *origin.Config) {
			c.Media = map[string][]byte{"sample.ts": clip}
			if tc.origin != "" {
				c.CacheControl = map[string]string{"sample.ts": tc.origin}
			}
		})
		cfg := nodeConfig(t, org)
		cfg.Origins[0].CacheControlOverride = tc.override
		n := startNode(t, cfg)
		if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
			t.Fatal(err)
		}
		if tc.stored {
			m, err := n.Store().Manifest(storeKey(t, org))
			if err != nil {
				t.Fatalf("origin %q, override %q: not stored: %v", tc.origin, tc.override, err)
			}
			if got := cfg.Origins[0].Policy().Lifetime(m.Freshness); got != time.Hour {
				t.Errorf("origin %q, override %q: lifetime %v, want 1h", tc.origin, tc.override, got)
			}
			continue
		}
		if infos, err := n.Store().List(); err != nil || len(infos) != 0 {
			t.Fatalf("origin %q, override %q: store lists %d recordings (%v), want none", tc.origin, tc.override, len(infos), err)
		}
	}
}

// TestFreshVisible: the admin API shows a recording fresh until a time,
// then stale; after a 304 revalidation, fresh again with the counts in
// /api/v1/node and in the metrics.
func TestFreshVisible(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Media = map[string][]byte{"sample.ts": shortClip(t, time.Second)}
	})
	n, api := adminNode(t, org, func(c *node.Config) { c.Origins[0].MaxAge = maxAge(8 * time.Second) })
	if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	in := waitComplete(t, n)
	s := waitStream(t, api, in.ID, "fresh", func(s node.StreamStatus) bool {
		return s.Freshness != nil && s.Freshness.State == "fresh"
	})
	if s.Freshness.LastModified == "" || !s.Freshness.FreshUntil.After(s.Freshness.FetchedAt) {
		t.Fatalf("freshness %+v: want Last-Modified and fresh_until after fetched_at", *s.Freshness)
	}
	waitStream(t, api, in.ID, "stale", func(s node.StreamStatus) bool {
		return s.Freshness != nil && s.Freshness.State == "stale"
	})
	if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	waitStream(t, api, in.ID, "fresh again", func(s node.StreamStatus) bool {
		return s.Freshness != nil && s.Freshness.State == "fresh"
	})
	st := getJSON[node.NodeStatus](t, "GET", api+"/api/v1/node", "", "", http.StatusOK)
	if st.Freshness.Revalidations != 1 || st.Freshness.NotModified != 1 {
		t.Fatalf("node freshness counts %+v, want one revalidation, one 304", st.Freshness)
	}
	if v := metricValue(t, api, "", "rtspmesh_revalidations_not_modified_total"); v != 1 {
		t.Fatalf("rtspmesh_revalidations_not_modified_total %v, want 1", v)
	}
}

// TestFreshGstReplaced: gst-rtsp-server sends no freshness headers, so the
// node compares descriptions. The file behind a path is replaced (a longer
// clip of another picture); after max_age the player decodes the new file;
// after another max_age the unchanged description keeps the recording.
func TestFreshGstReplaced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "clip.mp4")
	mp4Clip(t, sourceClip(t, "testsrc2", 2*time.Second), file)
	// From MP4: gst-rtsp-server gives an MPEG-TS file no duration (live).
	gst := interop.StartGstServer(t, interop.Mount{Path: "vod", Pipeline: interop.H264AACMP4.Pipeline(file)})
	cfg := nodeConfig(t, nil)
	cfg.Origins = []node.Origin{{Name: "gst", URL: "rtsp://" + gst.Addr, MaxAge: maxAge(time.Second)}}
	n := startNode(t, cfg)
	const path = "gst/vod"
	key, err := node.CanonicalKey(gst.URL("vod"))
	if err != nil {
		t.Fatal(err)
	}

	old := frameMD5(t, gst.URL("vod"), "tcp")
	sameFrames(t, "before", frameMD5(t, n.url(path), "tcp"), old)
	waitCompleteAt(t, n, path)

	next := filepath.Join(dir, "next.mp4")
	mp4Clip(t, sourceClip(t, "smptebars", 3*time.Second), next)
	if err := os.Rename(next, file); err != nil {
		t.Fatal(err)
	}
	replaced := frameMD5(t, gst.URL("vod"), "tcp")
	waitStale(t, n, cfg, key)
	sameFrames(t, "after the file was replaced", frameMD5(t, n.url(path), "tcp"), replaced)
	if st := n.FreshStats(); st.Changed != 1 {
		t.Fatalf("%+v, want one change", st)
	}
	waitCompleteAt(t, n, path)
	waitStale(t, n, cfg, key)
	sameFrames(t, "revalidated unchanged", frameMD5(t, n.url(path), "tcp"), replaced)
	if st := n.FreshStats(); st.Unchanged != 1 || st.Changed != 1 {
		t.Fatalf("%+v, want one unchanged after the change", st)
	}
}

// mp4Clip writes the MPEG-TS clip ts to path as MP4, streams copied.
func mp4Clip(t *testing.T, ts []byte, path string) {
	t.Helper()
	in := path + ".ts"
	if err := os.WriteFile(in, ts, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-i", in, "-c", "copy", "-bsf:a", "aac_adtstoasc", "-f", "mp4", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}

// TestRetention: recordings not played for their origin's max_unplayed are
// evicted, and so are the least recently played while the free disk space
// is below cache.free_target; pinned recordings stay either way.
func TestRetention(t *testing.T) {
	t.Parallel()
	clip := shortClip(t, time.Second)
	org := startOrigin(t, func(c *origin.Config) { c.Media = map[string][]byte{"a.ts": clip, "b.ts": clip} })
	off := node.Duration(0)
	for _, tc := range []struct {
		name string
		mod  func(*node.Config)
	}{
		{"max_unplayed", func(c *node.Config) { c.Origins[0].MaxUnplayed = maxAge(10 * time.Second) }},
		// Far more free space than any disk has: every idle recording goes.
		{"free_target", func(c *node.Config) { c.Origins[0].MaxUnplayed = &off; c.Cache.FreeTarget = 1 << 60 }},
	} {
		cfg := nodeConfig(t, org)
		cfg.Cache.RetentionInterval = node.Duration(100 * time.Millisecond)
		tc.mod(&cfg)
		n := startNode(t, cfg)
		keys := map[string]string{}
		for _, p := range []string{"a.ts", "b.ts"} {
			if err := firstPacket(t.Context(), n.url("o/"+p)); err != nil {
				t.Fatal(err)
			}
			k, err := node.CanonicalKey("rtsp://" + org.Addr() + "/" + p)
			if err != nil {
				t.Fatal(err)
			}
			keys[p] = k
			if p == "a.ts" {
				// Pinned while it is still being filled: retention never
				// takes a recording being filled, and this one must not
				// go between its completion and the pin.
				if err := n.Store().SetPinned(k, true); err != nil {
					t.Fatal(err)
				}
				waitCompleteAt(t, n, "o/"+p)
				continue
			}
			// With free_target out of reach, b.ts may go as soon as it is
			// complete: either is the end of its fill.
			testkit.Eventually(t, 60*time.Second, tc.name+": o/b.ts complete or evicted", func() bool {
				in, err := n.Stream("o/" + p)
				return errors.Is(err, store.ErrNotFound) || err == nil && in.State == store.StateComplete
			})
		}
		testkit.Eventually(t, 30*time.Second, tc.name+": the unpinned recording evicted", func() bool {
			_, err := n.Store().Manifest(keys["b.ts"])
			return errors.Is(err, store.ErrNotFound)
		})
		if _, err := n.Store().Manifest(keys["a.ts"]); err != nil {
			t.Fatalf("%s: the pinned recording: %v", tc.name, err)
		}
	}
}

// TestFreshStalePeerCopyRevalidated: B's policy calls A's copy stale; B
// revalidates it with the origin (304) and fills from A, fresh by its own
// policy, without an origin session.
func TestFreshStalePeerCopyRevalidated(t *testing.T) {
	t.Parallel()
	clip := shortClip(t, time.Second)
	org := startOrigin(t, func(c *origin.Config) {
		c.Media = map[string][]byte{"sample.ts": clip}
		for i := range 16 {
			c.Media[fmt.Sprintf("s%d.ts", i)] = clip
		}
	})
	a := meshNode(t, org, nil)
	b := meshNode(t, org, func(c *node.Config) { c.Origins[0].MaxAge = maxAge(2 * time.Second) }, a)
	// A must pull from the origin: a stream whose designated filler is A.
	waitMembers(t, []*testNode{a, b}, 2)
	path := filledBy(t, org, []*testNode{a, b}, a, samplePath, "o/s%d.ts")
	file := strings.TrimPrefix(path, "o/")
	if err := firstPacket(t.Context(), a.url(path)); err != nil {
		t.Fatal(err)
	}
	key, err := node.CanonicalKey("rtsp://" + org.Addr() + "/" + file)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "A's recording complete", func() bool {
		m, err := a.Store().Manifest(key)
		return err == nil && m.State == store.StateComplete
	})
	bPolicy := node.Origin{MaxAge: maxAge(2 * time.Second)}.Policy()
	testkit.Eventually(t, 20*time.Second, "A's copy stale by B's policy", func() bool {
		m, err := a.Store().Manifest(key)
		return err == nil && !bPolicy.Fresh(m.Freshness, time.Now())
	})
	_, plays := org.Sessions(file)
	if err := firstPacket(t.Context(), b.url(path)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "B's recording complete", func() bool {
		m, err := b.Store().Manifest(key)
		return err == nil && m.State == store.StateComplete
	})
	if m, _ := b.Store().Manifest(key); m.Source == store.SourceOrigin {
		t.Fatal("B filled from the origin, want A's copy revalidated")
	}
	if _, after := org.Sessions(file); after != plays {
		t.Fatalf("the origin played %d sessions for B, want 0", after-plays)
	}
	if st := b.FreshStats(); st.NotModified != 1 {
		t.Fatalf("B: %+v, want one 304", st)
	}
	ma, err := a.Store().Manifest(key)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.Store().Manifest(key)
	if err != nil || !mb.Freshness.FetchedAt.After(ma.Freshness.FetchedAt) {
		t.Fatalf("B's copy fetched at %v (%v), want the revalidation's, after A's %v", mb.Freshness.FetchedAt, err, ma.Freshness.FetchedAt)
	}
}

// TestFreshChangedWhilePlayed: the origin replaces a file while a player
// plays the old recording. A new player gets the new file (relayed), the
// old player the whole old one (never a splice), and once the old player
// has gone the new recording replaces the old one in the store.
func TestFreshChangedWhilePlayed(t *testing.T) {
	t.Parallel()
	// Long enough that the first player still plays when the second asks.
	oldClip, newClip := sourceClip(t, "testsrc2", 6*time.Second), sourceClip(t, "smptebars", 6*time.Second)
	org := startOrigin(t, func(c *origin.Config) { c.Media = map[string][]byte{"sample.ts": oldClip} })
	cfg := nodeConfig(t, org)
	cfg.Origins[0].MaxAge = maxAge(time.Second)
	n := startNode(t, cfg)
	key := storeKey(t, org)

	old := frameMD5(t, "rtsp://"+org.Addr()+"/sample.ts", "tcp")
	if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	waitComplete(t, n)
	waitStale(t, n, cfg, key)
	// A stale hit that finds it unchanged: the recording is fresh again for
	// the first player.
	playing := make(chan decoded, 1)
	go func() { playing <- decode(n.url(samplePath), "tcp") }()
	testkit.Eventually(t, 20*time.Second, "the first player reads the recording", func() bool {
		in, err := n.Stream(samplePath)
		return err == nil && in.Readers > 0
	})
	mod := time.Now().Add(2 * time.Second)
	if err := org.Replace("sample.ts", newClip, mod); err != nil {
		t.Fatal(err)
	}
	waitStale(t, n, cfg, key)
	if in, err := n.Stream(samplePath); err != nil || in.Readers == 0 {
		t.Fatalf("the first player is done already (%v); the test needs a longer clip", err)
	}
	during := frameMD5(t, n.url(samplePath), "tcp")
	first := <-playing
	replaced := frameMD5(t, "rtsp://"+org.Addr()+"/sample.ts", "tcp")
	sameFrames(t, "the player of the old recording", first.frames(t), old)
	sameFrames(t, "a player while the old recording is played", during, replaced)
	if st := n.FreshStats(); st.Changed < 1 {
		t.Fatalf("%+v, want the change counted", st)
	}
	// The old player is gone: the next stale hit drops the old recording
	// and stores the new one.
	testkit.Eventually(t, 20*time.Second, "the new recording stored", func() bool {
		if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
			t.Fatal(err)
		}
		m, err := n.Store().Manifest(key)
		return err == nil && m.Freshness.LastModified == mod.Truncate(time.Second).UTC().Format(http.TimeFormat)
	})
	waitComplete(t, n)
	sameFrames(t, "after the old player left", frameMD5(t, n.url(samplePath), "tcp"), replaced)
}

// TestFreshOriginHeaders: the built-in origin's Expires and Cache-Control
// max-age decide how long a recording stays fresh over max_age, unless
// use_origin_headers is false; a stale recording with must-revalidate is
// never served stale.
func TestFreshOriginHeaders(t *testing.T) {
	t.Parallel()
	clip := shortClip(t, time.Second)
	expires := time.Now().Add(time.Hour)
	org, stopOrigin := startOriginStoppable(t, func(c *origin.Config) {
		c.Media = map[string][]byte{"expires.ts": clip, "maxage.ts": clip, "strict.ts": clip}
		c.Expires = map[string]time.Time{"expires.ts": expires}
		c.CacheControl = map[string]string{"maxage.ts": "max-age=1", "strict.ts": "max-age=1, must-revalidate"}
	})
	off := false
	for _, tc := range []struct {
		path    string
		headers *bool
		want    time.Duration // lifetime, to the second; 0: Expires less the fetch time
	}{
		{"expires.ts", nil, 0}, // about an hour: how much less depends on how long the test took to fetch
		{"maxage.ts", nil, time.Second},
		{"expires.ts", &off, 30 * time.Minute},
		{"maxage.ts", &off, 30 * time.Minute},
	} {
		cfg := nodeConfig(t, org)
		cfg.Origins[0].MaxAge = maxAge(30 * time.Minute)
		cfg.Origins[0].UseOriginHeaders = tc.headers
		n := startNode(t, cfg)
		if err := firstPacket(t.Context(), n.url("o/"+tc.path)); err != nil {
			t.Fatal(err)
		}
		in := waitCompleteAt(t, n, "o/"+tc.path)
		m, err := n.Store().Manifest(in.Key)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if want == 0 {
			want = expires.Truncate(time.Second).Sub(m.Freshness.FetchedAt)
		}
		if got := cfg.Origins[0].Policy().Lifetime(m.Freshness); (got - want).Abs() > time.Second {
			t.Errorf("%s (use_origin_headers %v): lifetime %v, want %v (freshness %+v)", tc.path, tc.headers == nil, got, want, m.Freshness)
		}
	}

	cfg := nodeConfig(t, org)
	n := startNode(t, cfg)
	if err := firstPacket(t.Context(), n.url("o/strict.ts")); err != nil {
		t.Fatal(err)
	}
	in := waitCompleteAt(t, n, "o/strict.ts")
	stopOrigin()
	pol := cfg.Origins[0].Policy()
	testkit.Eventually(t, 20*time.Second, "stale", func() bool {
		m, err := n.Store().Manifest(in.Key)
		return err == nil && !pol.Fresh(m.Freshness, time.Now())
	})
	if res := describeWith(t, n.url("o/strict.ts"), nil); res.StatusCode != base.StatusServiceUnavailable {
		t.Fatalf("must-revalidate, origin down: %d %s, want 503", res.StatusCode, res.StatusMessage)
	}
}
