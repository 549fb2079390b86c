package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb testkit.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		for _, flag := range []string{"--help", "-h"} {
			code, out, errs := runCmd(t, c.name, flag)
			if code != exitOK {
				t.Errorf("%s %s: exit %d, stderr %q", c.name, flag, code, errs)
			}
			if !strings.HasPrefix(out, "rtspmesh "+c.name+": ") || !strings.Contains(out, "Usage: rtspmesh "+c.name) {
				t.Errorf("%s %s does not say what it does:\n%s", c.name, flag, out)
			}
		}
		code, out, _ := runCmd(t, "help", c.name)
		if code != exitOK || !strings.Contains(out, "rtspmesh "+c.name+": ") {
			t.Errorf("help %s: exit %d\n%s", c.name, code, out)
		}
	}
	code, out, _ := runCmd(t, "help")
	if code != exitOK {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out, c.name+" ") || !strings.Contains(out, c.summary) {
			t.Errorf("help does not list %s:\n%s", c.name, out)
		}
	}
	_, out, _ = runCmd(t, "node", "--help")
	for _, f := range []string{"--config", "--data-dir", "--rtsp-listen", "--bootstrap", "--log-level", "--set"} {
		if !strings.Contains(out, f) {
			t.Errorf("node --help does not list %s", f)
		}
	}
}

func TestBadUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"frobnicate"}, {"--config", "x"}, {"node", "--frob"}, {"node", "extra"},
		{"keygen"}, {"keygen", "a", "b"}, {"origin", "--live", "nofile"}, {"node", "--set", "novalue"},
		{"node", "--set", "nope.key=1"}, {"version", "--x"}} {
		code, _, errs := runCmd(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, exitUsage, errs)
		}
		if errs == "" {
			t.Errorf("%q: says nothing on stderr", args)
		}
	}
	_, _, errs := runCmd(t, "frobnicate")
	if !strings.Contains(errs, `unknown command "frobnicate"`) || !strings.Contains(errs, "Commands:") {
		t.Errorf("unknown command: stderr %q", errs)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := runCmd(t, "version")
	if code != exitOK || !strings.HasPrefix(out, "rtspmesh ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

func TestKeygen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "mesh.key")
	if code, _, errs := runCmd(t, "keygen", path); code != exitOK {
		t.Fatalf("keygen: exit %d: %s", code, errs)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pnet.DecodeV1PSK(bytes.NewReader(key)); err != nil {
		t.Fatalf("keygen wrote an invalid key: %v\n%s", err, key)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	code, _, errs := runCmd(t, "keygen", path)
	if code != exitFail || !strings.Contains(errs, "already exists") {
		t.Fatalf("keygen over an existing file: exit %d, %q", code, errs)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, key) {
		t.Fatal("keygen overwrote an existing key")
	}
	code, out, _ := runCmd(t, "keygen", "-")
	if _, err := pnet.DecodeV1PSK(strings.NewReader(out)); code != exitOK || err != nil {
		t.Fatalf("keygen -: exit %d, %v", code, err)
	}
	if out == string(key) {
		t.Fatal("two keys are the same")
	}
}

func TestNodeConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "node.yaml")
	err := os.WriteFile(file, []byte(`version: 1
origins:
  - name: cams
    url: rtsp://viewer:hunter2hunter2@cam.example.com/live
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// file < env < flags
	cfg, err := loadNodeConfig("", []string{"RTSPMESH_CONFIG=" + file, "RTSPMESH_LOG_LEVEL=warn", "RTSPMESH_DATA_DIR=/env"})
	if err != nil || len(cfg.Origins) != 1 || cfg.Log.Level != "warn" || cfg.DataDir != "/env" {
		t.Fatalf("loadNodeConfig: %v %+v", err, cfg)
	}
	if _, err := loadNodeConfig(file, []string{"RTSPMESH_RTSP_LISTN=:1"}); err == nil || !strings.Contains(err.Error(), "RTSPMESH_RTSP_LISTN") {
		t.Fatalf("an env typo was accepted: %v", err)
	}

	code, out, errs := runCmd(t, "node", "--config", file, "--print-config", "--rtsp-listen", "127.0.0.1:9999",
		"--data-dir", dir, "--bootstrap", "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
		"--set", "cache.max_bytes=20GiB", "--no-mesh")
	if code != exitOK {
		t.Fatalf("--print-config: exit %d: %s", code, errs)
	}
	for _, want := range []string{"listen: 127.0.0.1:9999", "max_bytes: 20GiB", "url: rtsp://cam.example.com/live", "enabled: false", "12D3KooWD3"} {
		if !strings.Contains(out, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("--print-config shows a password:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nrtsp:\n  listn: :1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCmd(t, "node", "--config", bad)
	if code != exitFail || !strings.Contains(errs, `line 3: unknown key "rtsp.listn"`) {
		t.Fatalf("unknown key: exit %d, %q", code, errs)
	}
	code, _, errs = runCmd(t, "node", "--config", file, "--rtsp-listen", "abc")
	if code != exitFail || !strings.Contains(errs, "rtsp.listen") {
		t.Fatalf("invalid value: exit %d, %q", code, errs)
	}
}

// TestNodeRuns starts a real node on loopback, waits for its banner and
// stops it with the context, as SIGINT would.
func TestNodeRuns(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"node", "--data-dir", t.TempDir(), "--rtsp-listen", "127.0.0.1:0",
			"--set", "rtsp.transports=tcp", "--set", "rtsp.udp_rtp_listen=", "--set", "rtsp.udp_rtcp_listen=",
			"--mesh-listen", "/ip4/127.0.0.1/tcp/0", "--set", "mesh.mdns=false", "--admin-listen", "127.0.0.1:0",
			"--set", "log.level=warn"}, &out, &errb)
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "admin:") { // the banner's last line
		select {
		case code := <-done:
			t.Fatalf("node exited early with %d: %s", code, errb.String())
		case <-deadline:
			cancel()
			t.Fatalf("no banner; stdout %q stderr %q", out.String(), errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	banner := out.String()
	for _, want := range []string{"rtsp:    rtsp://127.0.0.1:", "peer id: 12D3KooW", "mesh:    /ip4/127.0.0.1/tcp/"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if !regexp.MustCompile(`admin:   http://127\.0\.0\.1:[1-9][0-9]*/\n`).MatchString(banner) {
		t.Errorf("banner lacks the admin API's bound address:\n%s", banner)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("node stopped with exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop after its context ended")
	}
}

func TestOriginRuns(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"origin", "--listen", "127.0.0.1:0", "--log-level", "warn"}, &out, &errb)
	}()
	deadline := time.After(30 * time.Second)
	// Both samples, the live one under the name the demo gives it.
	for !strings.Contains(out.String(), "/sample.ts") || !strings.Contains(out.String(), "/"+origin.SampleLivePath+"\n") {
		select {
		case code := <-done:
			t.Fatalf("origin exited early with %d: %s", code, errb.String())
		case <-deadline:
			cancel()
			t.Fatalf("no banner; stdout %q", out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !strings.Contains(out.String(), "rtsp://127.0.0.1:") {
		t.Errorf("origin banner: %q", out.String())
	}

	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("origin stopped with exit %d: %s", code, errb.String())
	}
}

// TestLoggerRoutesLibraries: go-libp2p (slog via gologshim) and go-log
// (zap, used by kad-dht) write through the one handler, held to warn.
// Not parallel: it sets the process-wide loggers.
func TestLoggerRoutesLibraries(t *testing.T) {
	var buf testkit.Buffer
	logger, err := newLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("own event", "k", 1)
	gologshim.Logger("test-shim").Warn("shim warning", "peer", "p1")
	gologshim.Logger("test-shim").Info("shim chatter")
	golog.Logger("test-golog").Warnw("golog warning", "key", "v")
	golog.Logger("test-golog").Info("golog chatter")
	out := buf.String()
	for _, want := range []string{`"msg":"own event"`, `"msg":"shim warning"`, `"peer":"p1"`, `"msg":"golog warning"`,
		`"key":"v"`, `"logger":"test-golog"`, `"component":"libp2p"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "chatter") {
		t.Errorf("library info logs passed at level info:\n%s", out)
	}
	for _, bad := range [][2]string{{"loud", "text"}, {"info", "xml"}} {
		if _, err := newLogger(&buf, bad[0], bad[1]); err == nil {
			t.Errorf("newLogger(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
