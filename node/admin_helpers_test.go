package node_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// adminNode starts a node with its admin API on 127.0.0.1:0 and returns it
// with the API's base URL.
func adminNode(t *testing.T, org *origin.Origin, mod func(*node.Config), bootstrap ...*testNode) (*testNode, string) {
	t.Helper()
	n := meshNode(t, org, func(c *node.Config) {
		c.Admin.Listen = "127.0.0.1:0"
		if mod != nil {
			mod(c)
		}
	}, bootstrap...)
	if n.AdminAddr() == nil {
		t.Fatal("AdminAddr is nil with admin.listen set")
	}
	return n, "http://" + n.AdminAddr().String()
}

// call sends one request and returns the status and the body; a non-JSON
// answer from an /api path fails the test.
func call(t testing.TB, method, url, token, body string) (int, []byte) {
	t.Helper()
	var hdr map[string]string
	if token != "" {
		hdr = map[string]string{"Authorization": "Bearer " + token}
	}
	return callAs(t, method, url, "", hdr, body)
}

// callAs is call with a Host (when not "") and request headers.
func callAs(t testing.TB, method, url, host string, hdr map[string]string, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(url, "/api/") && !json.Valid(b) {
		t.Fatalf("%s %s: %d with a body that is not JSON: %q", method, url, res.StatusCode, b)
	}
	return res.StatusCode, b
}

// getJSON calls and decodes, failing unless the status is want.
func getJSON[T any](t testing.TB, method, url, token, body string, want int) T {
	t.Helper()
	code, b := call(t, method, url, token, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, code, b, want)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
	}
	return v
}

// wantError checks an error answer: the status and a JSON message.
func wantError(t *testing.T, method, url, token, body string, want int) string {
	t.Helper()
	e := getJSON[struct {
		Error string `json:"error"`
	}](t, method, url, token, body, want)
	if e.Error == "" {
		t.Fatalf("%s %s: error answer without a message", method, url)
	}
	return e.Error
}

// waitStream polls GET /api/v1/streams/{id} until cond holds.
func waitStream(t *testing.T, base, id string, what string, cond func(node.StreamStatus) bool) node.StreamStatus {
	t.Helper()
	var s node.StreamStatus
	testkit.Eventually(t, 90*time.Second, what, func() bool {
		code, b := call(t, "GET", base+"/api/v1/streams/"+id, "", "")
		if code != http.StatusOK {
			return false
		}
		s = node.StreamStatus{}
		return json.Unmarshal(b, &s) == nil && cond(s)
	})
	return s
}

// metricValue scrapes base/metrics and returns the value of one series,
// written as in the exposition format: `name{label="v"}`.
func metricValue(t *testing.T, base, token, series string) float64 {
	t.Helper()
	return metricValues(t, base, token, series)[0]
}

// metricValues is metricValue of several series from one scrape.
func metricValues(t *testing.T, base, token string, series ...string) []float64 {
	t.Helper()
	code, b := call(t, "GET", base+"/metrics", token, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	exposed := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ') // label values may hold spaces
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, val := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("metric %s: %v", name, err)
		}
		exposed[name] = v
	}
	vals := make([]float64, len(series))
	for i, name := range series {
		v, ok := exposed[name]
		if !ok {
			t.Fatalf("metric %s not exposed", name)
		}
		vals[i] = v
	}
	return vals
}

// waitNoFill waits until the node with the admin API at base runs no fill.
// A fill leaves the node's registry a moment after its recording is
// complete in the store, and a request in between joins it ("tail", not
// "local": seen once in a clean-clone run).
func waitNoFill(t *testing.T, base string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "no fill running", func() bool {
		return metricValue(t, base, "", "rtspmesh_fills_active") == 0
	})
}
