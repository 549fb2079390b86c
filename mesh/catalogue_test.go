package mesh

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// TestCatalogue: a peer lists what a node holds, each recording with its
// state, whether it is live, where it came from, its bytes and duration.
func TestCatalogue(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	vod, live := testKey("cat-vod"), testKey("cat-live")
	makeRecording(t, a.st, vod, 2*time.Second)
	liveRecording(t, a, live, &packetSource{size: 1200, rate: 250_000}, time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := connect(ctx, b, a); err != nil {
		t.Fatal(err)
	}
	c, err := b.Catalogue(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	want, err := a.st.List()
	if err != nil {
		t.Fatal(err)
	}
	if c.Truncated || len(c.Entries) != 2 || len(want) != 2 {
		t.Fatalf("catalogue %+v of a node holding %d recordings, want 2 entries", c, len(want))
	}
	for i, w := range want {
		got := c.Entries[i]
		if got.Key != w.Key || got.State != w.State || got.Live != w.Live || got.Source != w.Source ||
			got.Bytes != w.Bytes || got.Duration != w.Duration {
			t.Errorf("entry %d: %+v, want %+v", i, got, w)
		}
	}
	for _, e := range c.Entries {
		if (e.Key == live) != e.Live || e.Key == vod && e.State != store.StateComplete {
			t.Errorf("entry %+v: want %s live and %s complete", e, live, vod)
		}
	}
}

// TestCatalogueOnlyToAdmittedPeers: a node on an allow-list answers its
// friend and never a stranger (the gater refuses the connection).
func TestCatalogueOnlyToAdmittedPeers(t *testing.T) {
	t.Parallel()
	friend := startNode(t, Config{}, nil)
	stranger := startNode(t, Config{}, nil)
	guarded := startNode(t, Config{AllowPeers: []string{friend.ID()}}, nil)
	makeRecording(t, guarded.st, testKey("cat-guarded"), time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_ = connect(ctx, stranger, guarded)
	if c, err := stranger.Catalogue(ctx, guarded.ID()); err == nil {
		t.Fatalf("a peer not on the allow list got the catalogue: %+v", c)
	}
	if err := connect(ctx, friend, guarded); err != nil {
		t.Fatal(err)
	}
	if c, err := friend.Catalogue(ctx, guarded.ID()); err != nil || len(c.Entries) != 1 {
		t.Fatalf("the allowed peer's catalogue: %+v, %v", c, err)
	}
}

// TestCatalogueBounds: an answer lists at most MaxCatalogueEntries
// recordings in at most MaxCatalogueLen bytes and says it left some out.
func TestCatalogueBounds(t *testing.T) {
	t.Parallel()
	var many, long []store.Info
	for i := range MaxCatalogueEntries + 10 {
		many = append(many, store.Info{Key: fmt.Sprintf("rtsp://o.test:554/%04d", i), State: store.StateComplete, Source: "origin"})
	}
	for i := range 100 {
		long = append(long, store.Info{Key: fmt.Sprintf("rtsp://o.test:554/%04d/%s", i, strings.Repeat("x", 4000)), State: store.StatePartial})
	}
	for _, tc := range []struct {
		name  string
		infos []store.Info
	}{{"many", many}, {"long keys", long}} {
		b := appendCatalogue(nil, tc.infos)
		if len(b) > MaxCatalogueLen {
			t.Errorf("%s: answer of %d bytes, bound %d", tc.name, len(b), MaxCatalogueLen)
		}
		c, err := readCatalogue(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !c.Truncated || len(c.Entries) == 0 || len(c.Entries) > MaxCatalogueEntries {
			t.Errorf("%s: %d entries, truncated %v", tc.name, len(c.Entries), c.Truncated)
		}
		for i, e := range c.Entries {
			if e.Key != tc.infos[i].Key || e.State != tc.infos[i].State || e.Source != tc.infos[i].Source {
				t.Fatalf("%s: entry %d %+v, want %+v", tc.name, i, e, tc.infos[i])
			}
		}
	}
}

func seedCatalogue() []byte {
	return appendCatalogue(nil, []store.Info{
		{Key: "rtsp://origin.test:554/a.mp4", State: store.StateComplete, Source: "origin", Bytes: 2235700, Duration: 20 * time.Second},
		{Key: "rtsp://origin.test:554/live", State: store.StateLive, Live: true,
			Source: "12D3KooWF8PHgrC7gBuDfSGqdpa1RBn2Vx9isgDaU4TMMFasmg9v", Bytes: 1 << 20, Duration: time.Minute},
	})
}

func FuzzCatalogue(f *testing.F) {
	f.Add(seedCatalogue())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 1, 0xff, 0xff})
	f.Add(appendCatalogue(nil, []store.Info{{Key: "rtsp://u:p@h:554/x", State: store.StateComplete}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > MaxCatalogueLen {
			return // the client reads no more than that
		}
		c, err := readCatalogue(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(c.Entries) > MaxCatalogueEntries {
			t.Fatalf("accepted %d entries", len(c.Entries))
		}
		infos := make([]store.Info, len(c.Entries))
		for i, e := range c.Entries {
			if checkKey(e.Key) != nil {
				t.Fatalf("accepted a bad key %q", e.Key)
			}
			infos[i] = store.Info{Key: e.Key, State: e.State, Live: e.Live, Source: e.Source, Bytes: e.Bytes, Duration: e.Duration}
		}
		enc := appendCatalogue(nil, infos)
		if c.Truncated {
			enc[1] = 1
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x differs from the input %x", enc, b)
		}
	})
}
