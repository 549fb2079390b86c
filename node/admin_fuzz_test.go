package node_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/node"
)

// FuzzAdminAPI sends arbitrary requests to a real node's admin API: no
// input makes it fail with a 500 (a recovered panic) or answer an /api
// path with something other than JSON.
func FuzzAdminAPI(f *testing.F) {
	f.Add(uint8(0), "/api/v1/streams", "")
	f.Add(uint8(1), "/api/v1/prefetch", `{"path": "o/sample.ts"}`)
	f.Add(uint8(1), "/api/v1/prefetch", `{"path": "o/%2e%2e/x"}`)
	f.Add(uint8(2), "/api/v1/streams/"+strings.Repeat("f", 64), "")
	f.Add(uint8(1), "/api/v1/streams/x/pin", "{")
	f.Add(uint8(3), "/api/v1/node", "[]")

	// An origin nobody listens on: a prefetch fails at once, never fills.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	cfg := nodeConfig(f, nil)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Origins = []node.Origin{{Name: "o", URL: "rtsp://" + dead}}
	n := startNode(f, cfg)
	base := "http://" + n.AdminAddr().String()
	client := &http.Client{Timeout: 20 * time.Second}
	methods := []string{"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"}

	f.Fuzz(func(t *testing.T, m uint8, path, body string) {
		u, err := url.Parse(base + "/" + strings.TrimLeft(path, "/"))
		if err != nil || u.Host != n.AdminAddr().String() {
			return
		}
		req, err := http.NewRequest(methods[int(m)%len(methods)], u.String(), strings.NewReader(body))
		if err != nil {
			return
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, u, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 && res.StatusCode != http.StatusBadGateway && res.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("%s %s %q: %d %s", req.Method, u, body, res.StatusCode, b)
		}
		if strings.HasPrefix(u.Path, "/api/") && req.Method != "HEAD" && !json.Valid(b) {
			t.Fatalf("%s %s: %d answer is not JSON: %q", req.Method, u, res.StatusCode, b)
		}
	})
}
