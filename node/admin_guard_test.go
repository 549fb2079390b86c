package node_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rtspmesh/rtspmesh/node"
)

// send is callAs with the body as a string.
func send(t *testing.T, method, url, host string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	code, b := callAs(t, method, url, host, hdr, body)
	return code, string(b)
}

// TestAdminRefusesRebindingAndCrossOrigin: a Host that does not name the API
// (DNS rebinding) and cross-origin requests that change state are refused;
// the API's own address, localhost, configured names and same-origin
// requests work (issue 13).
func TestAdminRefusesRebindingAndCrossOrigin(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	cfg := nodeConfig(t, org)
	cfg.Mesh.Enabled = false
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Hosts = []string{"branch-node.example", "proxy.example:8443"}
	n := startNode(t, cfg)
	addr := n.AdminAddr().String()
	port := addr[strings.LastIndex(addr, ":"):]
	base := "http://" + addr

	hosts := []struct {
		host string
		want int
	}{
		{addr, 200},
		{"localhost" + port, 200},
		{"LOCALHOST" + port, 200},
		{"127.0.0.1" + port, 200},
		{"[::1]" + port, 200},
		{"branch-node.example", 200},
		{"branch-node.example:9999", 200},
		{"proxy.example:8443", 200},
		{"attacker.example", http.StatusMisdirectedRequest},
		{"attacker.example" + port, http.StatusMisdirectedRequest},
		{"localhost", http.StatusMisdirectedRequest}, // another port
		{"127.0.0.1:1", http.StatusMisdirectedRequest},
		{"10.0.0.1" + port, http.StatusMisdirectedRequest}, // bound to loopback
		{"proxy.example", http.StatusMisdirectedRequest},
	}
	for _, tc := range hosts {
		for _, path := range []string{"/api/v1/node", "/", "/metrics"} {
			if code, body := send(t, "GET", base+path, tc.host, nil, ""); code != tc.want {
				t.Errorf("GET %s with Host %q: %d %s, want %d", path, tc.host, code, body, tc.want)
			}
		}
	}

	prefetch := `{"path": "o/sample.ts"}`
	refused := []map[string]string{
		{"Origin": "http://evil.example", "Content-Type": "text/plain"},
		{"Origin": "http://evil.example", "Content-Type": "application/json"},
		{"Origin": "null", "Content-Type": "application/json"},
		{"Origin": "http://127.0.0.1:1", "Content-Type": "application/json"},
		{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
		{"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"},
	}
	for _, hdr := range refused {
		if code, body := send(t, "POST", base+"/api/v1/prefetch", "", hdr, prefetch); code != http.StatusForbidden {
			t.Errorf("POST /api/v1/prefetch with %v: %d %s, want 403", hdr, code, body)
		}
	}
	if code, body := send(t, "POST", base+"/api/v1/prefetch", "attacker.example"+port,
		map[string]string{"Content-Type": "application/json"}, prefetch); code != http.StatusMisdirectedRequest {
		t.Errorf("POST with Host attacker.example: %d %s", code, body)
	}
	if fills := getJSON[node.NodeStatus](t, "GET", base+"/api/v1/node", "", "", 200).Fills; fills != 0 {
		t.Fatalf("a refused request started %d fills", fills)
	}
	if v := metricValue(t, base, "", "rtspmesh_admin_refused_total"); v < float64(len(refused)) {
		t.Errorf("rtspmesh_admin_refused_total %v, want at least %d", v, len(refused))
	}

	// Same origin, as the dashboard sends it.
	code, body := send(t, "POST", base+"/api/v1/prefetch", "", map[string]string{
		"Origin": base, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}, prefetch)
	if code != http.StatusAccepted {
		t.Fatalf("same-origin prefetch: %d %s, want 202", code, body)
	}
	// The CLI and curl send neither header.
	if code, body := send(t, "POST", base+"/api/v1/prefetch", "", map[string]string{"Content-Type": "application/json"}, prefetch); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("prefetch without browser headers: %d %s", code, body)
	}
}

// TestAdminTokenStillRequiredSameOrigin: same-origin does not replace the
// token when one is set.
func TestAdminTokenStillRequiredSameOrigin(t *testing.T) {
	t.Parallel()
	cfg := nodeConfig(t, nil)
	cfg.Mesh.Enabled = false
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Token = strings.Repeat("k", 32)
	n := startNode(t, cfg)
	base := "http://" + n.AdminAddr().String()
	hdr := map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}
	if code, body := send(t, "POST", base+"/api/v1/streams/00/pin", "", hdr, ""); code != http.StatusUnauthorized {
		t.Fatalf("same-origin pin without the token: %d %s, want 401", code, body)
	}
	hdr["Authorization"] = "Bearer " + cfg.Admin.Token
	if code, body := send(t, "POST", base+"/api/v1/streams/00/pin", "", hdr, ""); code != http.StatusNotFound {
		t.Fatalf("same-origin pin with the token: %d %s, want 404 (no such stream)", code, body)
	}
}
