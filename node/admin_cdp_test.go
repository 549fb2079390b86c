package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A minimal Chrome DevTools Protocol driver for the dashboard test: launch
// headless Chromium, attach to its page over the DevTools websocket, call
// methods. (gorilla/websocket is already in the module graph through
// libp2p; a CDP library would add a large dependency for four methods.)

const chromiumPath = "/usr/bin/chromium"

type browser struct {
	conn *websocket.Conn
	mu   sync.Mutex // guards writes and pending
	next int64
	pend map[int64]chan cdpAnswer
	done chan struct{}
	logs []string // console messages and exceptions, for failures
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// startBrowser runs headless Chromium with a fresh profile until the test
// ends and returns its first page.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run `make test-deps` (apt-get install chromium): %v", chromiumPath, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,900",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	waited := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-waited
	})
	// Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/<id>".
	found := make(chan string, 1)
	go func() {
		defer close(waited)
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`DevTools listening on ws://([^/]+)/`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	var hostPort string
	select {
	case hostPort = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not open its DevTools port within 30s")
	}
	var targets []struct {
		Type string `json:"type"`
		URL  string `json:"webSocketDebuggerUrl"`
	}
	res, err := http.Get("http://" + hostPort + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&targets)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var wsURL string
	for _, tg := range targets {
		if tg.Type == "page" {
			wsURL = tg.URL
			break
		}
	}
	if wsURL == "" {
		t.Fatalf("chromium has no page target: %+v", targets)
	}
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	b := &browser{conn: conn, pend: make(map[int64]chan cdpAnswer), done: make(chan struct{})}
	go b.read()
	t.Cleanup(func() {
		conn.Close()
		<-b.done
		if t.Failed() {
			t.Logf("browser console:\n%s", strings.Join(b.console(), "\n"))
		}
	})
	b.call(t, "Runtime.enable", nil, nil)
	b.call(t, "Page.enable", nil, nil)
	return b
}

func (b *browser) read() {
	defer close(b.done)
	for {
		var msg struct {
			ID     int64           `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpAnswer
		}
		if err := b.conn.ReadJSON(&msg); err != nil {
			b.mu.Lock()
			for id, ch := range b.pend {
				close(ch)
				delete(b.pend, id)
			}
			b.mu.Unlock()
			return
		}
		b.mu.Lock()
		if msg.ID != 0 {
			if ch := b.pend[msg.ID]; ch != nil {
				ch <- msg.cdpAnswer
				delete(b.pend, msg.ID)
			}
		} else if msg.Method == "Runtime.consoleAPICalled" || msg.Method == "Runtime.exceptionThrown" {
			b.logs = append(b.logs, msg.Method+": "+string(msg.Params))
		}
		b.mu.Unlock()
	}
}

func (b *browser) console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.logs...)
}

// call sends one CDP method and decodes its result into out (if not nil).
func (b *browser) call(t *testing.T, method string, params, out any) {
	t.Helper()
	ch := make(chan cdpAnswer, 1)
	b.mu.Lock()
	b.next++
	id := b.next
	b.pend[id] = ch
	err := b.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	b.mu.Unlock()
	if err != nil {
		t.Fatalf("cdp %s: %v", method, err)
	}
	select {
	case ans, ok := <-ch:
		if !ok {
			t.Fatalf("cdp %s: connection closed", method)
		}
		if ans.Error != nil {
			t.Fatalf("cdp %s: %s", method, ans.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(ans.Result, out); err != nil {
				t.Fatalf("cdp %s: %v", method, err)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("cdp %s: no answer within 30s", method)
	}
}

// eval runs a JavaScript expression in the page and decodes its value.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.call(t, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if r.Exception != nil {
		t.Fatalf("evaluate %s: %s", expr, r.Exception.Text)
	}
	var v T
	if len(r.Result.Value) > 0 {
		if err := json.Unmarshal(r.Result.Value, &v); err != nil {
			t.Fatalf("evaluate %s: %v (%s)", expr, err, r.Result.Value)
		}
	}
	return v
}

// click presses and releases the mouse on the centre of the element that
// selector finds, as a person would.
func (b *browser) click(t *testing.T, selector string) {
	t.Helper()
	b.press(t, selector)()
}

// press presses the mouse on the centre of the element that selector finds
// and returns its release. The page's redraws can move the element between
// measuring it and pressing; a press that did not land on it is released
// away from it (so nothing is clicked) and made again, at most 5 times.
func (b *browser) press(t *testing.T, selector string) (release func()) {
	t.Helper()
	mouse := func(typ string, x, y float64) {
		b.call(t, "Input.dispatchMouseEvent", map[string]any{"type": typ, "x": x, "y": y, "button": "left", "clickCount": 1}, nil)
	}
	for attempt := 1; attempt <= 5; attempt++ {
		box := eval[[]float64](t, b, fmt.Sprintf(`(() => {
			if (!window.__testPress) {
				window.__testPress = {target: null};
				document.addEventListener("pointerdown", (e) => { window.__testPress.target = e.target }, true);
			}
			window.__testPress.target = null;
			const e = document.querySelector(%q); if (!e) return null;
			e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect(); return [r.x + r.width/2, r.y + r.height/2]; })()`, selector))
		if len(box) != 2 {
			t.Fatalf("click: no element %s", selector)
		}
		mouse("mouseMoved", box[0], box[1])
		mouse("mousePressed", box[0], box[1])
		if eval[bool](t, b, fmt.Sprintf(`(() => { const e = document.querySelector(%q), p = window.__testPress.target;
			return !!e && !!p && e.contains(p) })()`, selector)) {
			return func() { mouse("mouseReleased", box[0], box[1]) }
		}
		mouse("mouseReleased", 1, 1)
		t.Logf("press %d on %s landed elsewhere (the page redrew); pressing again", attempt, selector)
	}
	t.Fatalf("click: 5 presses missed %s", selector)
	return nil
}
