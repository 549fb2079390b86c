package node_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestAdminPeersShowWhatEachHolds: GET /api/v1/peers lists each peer's
// recordings (the catalogue protocol), with their paths on this node and
// where the peer got them.
func TestAdminPeersShowWhatEachHolds(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) { c.Media["short.ts"] = shortClip(t, 2*time.Second) })
	a, _ := adminNode(t, org, nil)
	b, baseB := adminNode(t, org, nil, a)
	const path = "o/short.ts"
	playToEnd(t, a.url(path))
	in := waitCompleteAt(t, a, path)

	var peerA node.PeerStatus
	testkit.Eventually(t, 30*time.Second, "B's view of A lists the recording complete", func() bool {
		for _, p := range getJSON[[]node.PeerStatus](t, "GET", baseB+"/api/v1/peers", "", "", http.StatusOK) {
			if p.ID == a.PeerID() {
				peerA = p
			}
		}
		return len(peerA.Holds) == 1 && peerA.Holds[0].State == "complete"
	})
	h := peerA.Holds[0]
	want := node.PeerStream{ID: store.StreamID(in.Key), Key: in.Key, Path: path, State: "complete", Source: "origin",
		SourceKind: "origin", Bytes: in.Bytes, Duration: in.Duration.Seconds()}
	if h != want || peerA.CatalogueError != "" || peerA.HoldsTruncated {
		t.Fatalf("B's view of A: %+v (error %q), want %+v", h, peerA.CatalogueError, want)
	}
	// B fills from A: A's view of B says B got it from A.
	playToEnd(t, b.url(path))
	waitCompleteAt(t, b, path)
	_, baseA := a, "http://"+a.AdminAddr().String()
	for _, p := range getJSON[[]node.PeerStatus](t, "GET", baseA+"/api/v1/peers", "", "", http.StatusOK) {
		if p.ID != b.PeerID() {
			continue
		}
		if len(p.Holds) != 1 || p.Holds[0].Source != a.PeerID() || p.Holds[0].SourceKind != "peer" {
			t.Fatalf("A's view of B: %+v, want the recording from A", p)
		}
		return
	}
	t.Fatalf("A does not list B among its peers")
}

// TestDashboardShowsMesh: B's dashboard in headless Chromium shows the
// recording B filled from A as coming from A, what A holds (from the
// origin), and B's WAN bytes saved; A's dashboard names B's source "this
// node". It writes the screenshot for -dashboard.screenshot (make
// screenshot: docs/dashboard.png).
func TestDashboardShowsMesh(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Media["allhands.ts"] = shortClip(t, 3*time.Second)
		c.Media["training/welcome.ts"] = shortClip(t, 2*time.Second)
	})
	a, baseA := adminNode(t, org, nil)
	b, baseB := adminNode(t, org, nil, a)
	// A: allhands from the origin, then a hit; welcome from the origin.
	// B: allhands from A (a WAN saving), sample.ts from the origin, filling.
	playToEnd(t, a.url("o/allhands.ts"))
	waitCompleteAt(t, a, "o/allhands.ts")
	playToEnd(t, a.url("o/allhands.ts"))
	playToEnd(t, a.url("o/training/welcome.ts"))
	playToEnd(t, b.url("o/allhands.ts"))
	if err := firstPacket(t.Context(), b.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	allhands, err := a.Stream("o/allhands.ts")
	if err != nil {
		t.Fatal(err)
	}

	br := startBrowser(t)
	br.call(t, "Page.navigate", map[string]any{"url": baseB + "/?refresh=0.5"}, nil)
	row := fmt.Sprintf(`#streams tr[data-id=%q]`, allhands.ID)
	waitPage(t, br, "B's recording says it came from A", fmt.Sprintf(
		`document.querySelector(%q)?.dataset.from === %q`, row+` .from`, a.PeerID()))
	peer := fmt.Sprintf(`#peers tr[data-peer=%q]`, a.PeerID())
	waitPage(t, br, "the mesh table lists what A holds", fmt.Sprintf(
		`document.querySelectorAll(%q).length === 2 && document.querySelector(%q)?.dataset.state === "complete"`,
		peer+` ul.holds li[data-key]`, fmt.Sprintf(`%s li[data-key=%q]`, peer, allhands.Key)))
	from := eval[string](t, br, fmt.Sprintf(`document.querySelector(%q).textContent`, fmt.Sprintf(`%s li[data-key=%q] .from`, peer, allhands.Key)))
	if from != "origin" {
		t.Fatalf("A's allhands came from %q on B's page, want origin", from)
	}
	saved := eval[string](t, br, `document.getElementById("saved").textContent`)
	stB := getJSON[node.NodeStatus](t, "GET", baseB+"/api/v1/node", "", "", http.StatusOK)
	if stB.WANSaved == 0 || saved == "0 B" || saved == "–" {
		t.Fatalf("B's WAN bytes saved: page %q, API %d; want > 0 after a play filled from A", saved, stB.WANSaved)
	}
	// Let B's sample.ts show some progress, then keep the picture.
	waitPage(t, br, "B's sample.ts row", `document.querySelectorAll("#streams tbody tr").length === 2`)
	shot(t, br, true)

	// A's page names the source of B's copy: this node.
	br.call(t, "Page.navigate", map[string]any{"url": baseA + "/?refresh=0.5"}, nil)
	waitPage(t, br, "A's page says B got allhands from this node", fmt.Sprintf(
		`document.querySelector(%q)?.textContent === "this node"`,
		fmt.Sprintf(`#peers tr[data-peer=%q] li[data-key=%q] .from`, b.PeerID(), allhands.Key)))
	if errs := eval[bool](t, br, `document.getElementById("status").classList.contains("bad")`); errs {
		t.Fatalf("the page shows an error: %s", eval[string](t, br, `document.getElementById("status").textContent`))
	}
}
