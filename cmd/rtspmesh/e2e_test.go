package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// TestDemoCheck runs what `make run` shows, with --check: A fills from the
// origin, B and C from peers, A again from its own store and C from its own
// over UDP; then every node's admin API answers for its node.
func TestDemoCheck(t *testing.T) {
	t.Parallel()
	var out, logs testkit.Buffer
	err := runDemo(t.Context(), []string{"--check", "--port", "0"}, &out, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("demo --check: %v\n%s", err, out.String())
	}
	table := out.String()
	// The banner's node names are the logs' (the names are given before
	// the nodes start, not after they agree on the filler).
	banner := regexp.MustCompile(`(?m)^node ([ABC])  \(peer …(\S+)\)\n  vod    rtsp://(\S+?)/`).FindAllStringSubmatch(table, -1)
	if len(banner) != 3 {
		t.Fatalf("want a banner for A, B and C, got %d:\n%s", len(banner), table)
	}
	for _, b := range banner {
		started := regexp.MustCompile(`msg="node started" node=` + b[1] + ` \S+ rtsp=` + regexp.QuoteMeta(b[3]) + ` peer=\S+` + regexp.QuoteMeta(b[2]) + `\n`)
		if !started.MatchString(logs.String()) {
			t.Errorf("the banner's node %s (RTSP %s, peer …%s) is not the logs' node %s:\n%s", b[1], b[3], b[2], b[1], logs.String())
		}
	}
	rows := regexp.MustCompile(`(?m)^([ABC])\s+(vod|live)\s+(tcp|udp)\s+(origin|local|peer [ABC])\s+\S+\s+(\d+)\s+\S+\s+ok$`).FindAllStringSubmatch(table, -1)
	// A is the clip's designated filler (the demo names it so); the live
	// stream's filler (any node) plays it first, another node relays it.
	want := []struct{ node, stream, transport, from string }{
		{"A", "vod", "tcp", "origin"}, {"B", "vod", "tcp", "peer A"}, {"C", "vod", "tcp", "peer"},
		{"A", "vod", "tcp", "local"}, {"C", "vod", "udp", "local"}, {"", "live", "tcp", "origin"}, {"", "live", "tcp", "peer "},
	}
	if len(rows) != len(want) {
		t.Fatalf("want %d ok rows in the table, got %d:\n%s", len(want), len(rows), table)
	}
	for i, w := range want {
		if w.node == "" && w.from == "peer " {
			w.node, w.from = rows[i][1], "peer "+rows[i-1][1] // the relay of the first live player's node
			if rows[i][1] == rows[i-1][1] {
				t.Errorf("both live plays on node %s", rows[i][1])
			}
		} else if w.node == "" {
			w.node = rows[i][1]
		}
		if rows[i][1] != w.node || rows[i][2] != w.stream || rows[i][3] != w.transport || !strings.HasPrefix(rows[i][4], w.from) {
			t.Errorf("row %d: node %s %s over %s from %q, want node %s %s over %s from %s…\n%s",
				i, rows[i][1], rows[i][2], rows[i][3], rows[i][4], w.node, w.stream, w.transport, w.from, table)
		}
	}
	// The status table: each node's admin API, with its peers and what its
	// players were sent. A and C played a complete recording (saved bytes).
	status := regexp.MustCompile(`(?m)^([ABC])\s+http://127\.0\.0\.1:\d+/\s+(\d+)\s+(\d+)\s+(.+?B)\s+(.+?B)\s+(.+?B)\s+ok$`).FindAllStringSubmatch(table, -1)
	if len(status) != 3 {
		t.Fatalf("want an ok status row for A, B and C, got %d:\n%s", len(status), table)
	}
	for _, r := range status {
		if r[2] == "0" || r[3] == "0" || r[5] == "0 B" {
			t.Errorf("node %s: %s peers, %s recordings, %s WAN saved: want each > 0\n%s", r[1], r[2], r[3], r[5], table)
		}
	}
	for _, w := range []string{"ffplay -rtsp_transport tcp rtsp://", "ffplay -rtsp_transport udp rtsp://", "rtspmesh status --admin 127.0.0.1:"} {
		if strings.Count(table, w) != 3 {
			t.Errorf("the banner does not give every node %q:\n%s", w, table)
		}
	}
}

// TestThreeNodeProcesses: three `rtspmesh node` processes joined through a
// bootstrap multiaddr; a player on the third decodes what the first cached,
// frame for frame, without another origin session.
func TestThreeNodeProcesses(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "rtspmesh")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	org, err := origin.New(origin.Config{
		Listen: "127.0.0.1:0",
		Media:  map[string][]byte{"sample.ts": origin.SampleClip()},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	orgDone := make(chan error, 1)
	go func() { orgDone <- org.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-orgDone })

	cfgFile := filepath.Join(t.TempDir(), "node.yaml")
	cfg := fmt.Sprintf("version: 1\norigins:\n  - name: o\n    url: rtsp://%s\n", org.Addr())
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startNodeProcess(t, bin, cfgFile, "")
	b := startNodeProcess(t, bin, cfgFile, a.mesh)
	c := startNodeProcess(t, bin, cfgFile, b.mesh)

	var direct []string
	var wg sync.WaitGroup
	wg.Go(func() { direct = ffmpegVideoMD5(t, "rtsp://"+org.Addr()+"/sample.ts") })
	res, err := playOnce(t.Context(), a.rtsp+"/o/sample.ts", "tcp", 0)
	if err != nil {
		t.Fatalf("play on A: %v", err)
	}
	wg.Wait()
	viaC := ffmpegVideoMD5(t, c.rtsp+"/o/sample.ts")
	if len(direct) == 0 || len(viaC) != len(direct) {
		t.Fatalf("C decoded %d frames, the origin %d (A delivered %d packets)", len(viaC), len(direct), res.packets)
	}
	for i := range direct {
		if viaC[i] != direct[i] {
			t.Fatalf("frame %d through C differs from the origin's", i)
		}
	}
	if _, plays := org.Sessions("sample.ts"); plays != 2 {
		t.Fatalf("origin plays %d, want 2 (the direct decode and A's fill)", plays)
	}
}

// nodeProcess is a running `rtspmesh node`.
type nodeProcess struct {
	rtsp string // rtsp://host:port
	mesh string // a full multiaddr
}

var bannerRTSP = regexp.MustCompile(`rtsp:\s+(rtsp://\S+)/<origin>/<path>`)
var bannerMesh = regexp.MustCompile(`mesh:\s+(/ip4/127\.0\.0\.1/tcp/\S+/p2p/\S+)`)

func startNodeProcess(t *testing.T, bin, cfgFile, bootstrap string) nodeProcess {
	t.Helper()
	args := []string{"node", "--config", cfgFile, "--data-dir", t.TempDir(),
		"--rtsp-listen", "127.0.0.1:0", "--set", "rtsp.udp_rtp_listen=", "--set", "rtsp.udp_rtcp_listen=",
		"--set", "rtsp.transports=tcp", "--mesh-listen", "/ip4/127.0.0.1/tcp/0",
		"--set", "mesh.mdns=false", "--admin-listen", "", "--set", "log.level=warn"}
	if bootstrap != "" {
		args = append(args, "--bootstrap", bootstrap)
	}
	cmd := exec.Command(bin, args...)
	var stderr testkit.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("node process: %v\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("node process did not stop on SIGTERM")
		}
	})
	banner := make(chan nodeProcess, 1)
	go func() {
		var p nodeProcess
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := bannerRTSP.FindStringSubmatch(sc.Text()); m != nil {
				p.rtsp = m[1]
			}
			if m := bannerMesh.FindStringSubmatch(sc.Text()); m != nil && p.mesh == "" {
				p.mesh = m[1]
				banner <- p
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case p := <-banner:
		return p
	case <-time.After(30 * time.Second):
		t.Fatalf("no banner from the node process; stderr:\n%s", stderr.String())
	}
	return nodeProcess{}
}

// ffmpegVideoMD5 decodes url's video with ffmpeg and returns each frame's
// md5 (interop.VideoMD5s). It may run on any goroutine: a failure is
// t.Errorf and no frames.
func ffmpegVideoMD5(t *testing.T, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	md5s, _, err := interop.VideoMD5s(ctx, "-rtsp_transport", "tcp", "-i", url)
	if err != nil {
		t.Error(err)
		return nil
	}
	return md5s
}
