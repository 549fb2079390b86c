package node_test

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// -dashboard.screenshot=FILE also writes the dashboard's screenshot there
// (make screenshot: docs/dashboard.png).
var screenshotTo = flag.String("dashboard.screenshot", "", "write the dashboard test's screenshot (PNG) to this file")

// TestDashboardInChromium drives the dashboard in headless Chromium: a test
// player creates a stream, the page shows it (state, source, RTSP URL),
// a person's two clicks on Evict remove it and the page shows it gone.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) { c.Media["allhands.ts"] = origin.SampleClip() })
	// The fill stops with its last player, so the stream soon becomes
	// evictable (partial) without waiting for the whole clip.
	// Speed 1, one range at a time: the prefetch below stays in progress
	// long enough to be seen.
	n, base := adminNode(t, org, func(c *node.Config) {
		c.Cache.CompleteOnAbandon, c.Origins[0].Speed, c.Origins[0].RangeParallelism = false, new(1.0), new(1)
	})
	b := startBrowser(t)

	b.call(t, "Page.navigate", map[string]any{"url": base + "/?refresh=0.5"}, nil)
	waitPage(t, b, "the page shows the node", fmt.Sprintf(
		`document.getElementById("node-id").textContent.includes(%q) && document.getElementById("no-streams").hidden === false`, n.PeerID()))

	if err := firstPacket(t.Context(), n.url(samplePath)); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, base, "", "rtspmesh_player_sent_bytes_total"); v <= 0 {
		t.Fatalf("rtspmesh_player_sent_bytes_total = %v after a player got a packet", v)
	}
	key := storeKey(t, org)
	id := store.StreamID(key)
	row := fmt.Sprintf(`tr[data-id=%q]`, id)
	waitPage(t, b, "the page lists the player's stream", fmt.Sprintf(`!!document.querySelector(%q)`, row))
	cells := eval[[]string](t, b, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(c => c.textContent)`, row+" td"))
	url := eval[string](t, b, fmt.Sprintf(`document.querySelector(%q).value`, row+" input.url"))
	if len(cells) < 3 || !contains(cells[0], samplePath) || !contains(cells[2], "origin") || url != n.url(samplePath) {
		t.Fatalf("stream row: cells %q, RTSP URL %q (want %q)", cells, url, n.url(samplePath))
	}
	// Its fill stops once the player has gone; then Evict is enabled.
	evict := row + ` button[data-action="evict"]`
	waitPage(t, b, "the stream is partial and evictable", fmt.Sprintf(
		`document.querySelector(%q)?.dataset.state === "partial" && document.querySelector(%q)?.disabled === false`, row, evict))
	if ratio := eval[string](t, b, `document.getElementById("hit-ratio").textContent`); ratio != "0%" {
		t.Fatalf("hit ratio after one miss: %q", ratio)
	}

	// Pin from the page.
	b.click(t, row+` button[data-action="pin"]`)
	waitPage(t, b, "the page shows it pinned", fmt.Sprintf(`!!document.querySelector(%q)`, row+` button[data-action="unpin"]`))
	if in, err := n.Store().Info(key); err != nil || !in.Pinned {
		t.Fatalf("pinned from the page, store says: %+v %v", in, err)
	}
	// Prefetch another stream from the page's form.
	eval[bool](t, b, `(() => { document.getElementById("prefetch-path").value = "o/allhands.ts"; return true })()`)
	b.click(t, `#prefetch-form button`)
	const other = `tr[data-path="o/allhands.ts"]`
	waitPage(t, b, "the page shows the prefetched stream filling, with its progress", fmt.Sprintf(
		`document.querySelector(%q)?.dataset.state === "filling" && parseInt(document.querySelector(%q).cells[4].textContent) > 0 &&
		/ of 20s · .* · \d+\.\dx · ETA /.test(document.querySelector(%q)?.textContent ?? "")`, other, other, other+" .fill-progress"))
	shot(t, b, false)

	// A person's press can outlast a redraw of the page; the click counts.
	release := b.press(t, evict)
	status := eval[string](t, b, `document.getElementById("status").textContent`)
	waitPage(t, b, "the page refreshes while Evict is pressed", fmt.Sprintf(`document.getElementById("status").textContent !== %q`, status))
	release()
	waitPage(t, b, "evict asks for confirmation", fmt.Sprintf(`document.querySelector(%q)?.textContent === "Confirm evict"`, evict))
	if _, err := n.Store().Info(key); err != nil {
		t.Fatalf("the first click evicted already: %v", err)
	}
	b.click(t, evict)
	waitPage(t, b, "the stream is gone from the page", fmt.Sprintf(
		`!document.querySelector(%q) && document.querySelectorAll("#streams tbody tr").length === 1`, row))
	if _, err := n.Store().Info(key); err == nil {
		t.Fatal("the page no longer shows the stream but the store still holds it")
	}
	if code, _ := call(t, "GET", base+"/api/v1/streams/"+id, "", ""); code != http.StatusNotFound {
		t.Fatalf("GET the evicted stream: %d", code)
	}
	if errs := eval[bool](t, b, `document.getElementById("status").classList.contains("bad")`); errs {
		t.Fatalf("the page shows an error: %s", eval[string](t, b, `document.getElementById("status").textContent`))
	}
}

func contains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

// waitPage polls a JavaScript condition in the page.
func waitPage(t *testing.T, b *browser, what, cond string) {
	t.Helper()
	expr := "(() => { try { return !!(" + cond + ") } catch (e) { return false } })()"
	testkit.Eventually(t, 30*time.Second, what, func() bool { return eval[bool](t, b, expr) })
}

// shot takes a PNG screenshot and checks it decodes; with save, it writes
// it where -dashboard.screenshot says.
func shot(t *testing.T, b *browser, save bool) {
	t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	b.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	img, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width < 800 {
		t.Fatalf("screenshot: %v, %dx%d", err, cfg.Width, cfg.Height)
	}
	out := filepath.Join(t.TempDir(), "dashboard.png")
	if save && *screenshotTo != "" {
		out = *screenshotTo
	}
	if err := os.WriteFile(out, img, 0o644); err != nil {
		t.Fatal(err)
	}
}
