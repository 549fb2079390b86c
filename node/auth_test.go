package node_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge"
)

// gstPlay plays url with GStreamer to the end and returns its output.
func gstPlayCreds(url string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmdArgs := append([]string{"rtspsrc", "location=" + url, "protocols=tcp"}, args...)
	cmdArgs = append(cmdArgs, "!", "decodebin", "!", "fakesink", "sync=false")
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "gst-launch-1.0", cmdArgs...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// rawDescribe sends one DESCRIBE with the given Authorization (none when
// "") and returns the response.
func rawDescribe(t *testing.T, addr, path, authorization string) *base.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "DESCRIBE rtsp://" + addr + "/" + path + " RTSP/1.0\r\nCSeq: 1\r\n"
	if authorization != "" {
		req += "Authorization: " + authorization + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var res base.Response
	if err := res.Unmarshal(bufio.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	return &res
}

// TestPlayerDigestAuth: with rtsp.auth users, players without credentials
// get 401 with a Digest challenge; ffmpeg and GStreamer with a user's
// credentials play every frame; a wrong password, a user outside the
// origin's players and Basic (not enabled) are refused (issue 13).
func TestPlayerDigestAuth(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, nil)
	cfg := nodeConfig(t, org)
	cfg.Mesh.Enabled = false
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.RTSP.Auth.Users = []node.PlayerUser{
		{Name: "alice", HA1: rtspedge.HA1("alice", "rtspmesh", "s3cret-a")},
		{Name: "bob", HA1: rtspedge.HA1("bob", "rtspmesh", "s3cret-b")},
	}
	if err := cfg.ApplyEnv([]string{"RTSPMESH_PLAYER_CAROL_PASSWORD=ignored"}); err == nil {
		t.Fatal("a password for an unknown player user was accepted")
	}
	cfg.RTSP.Auth.Users = append(cfg.RTSP.Auth.Users, node.PlayerUser{Name: "carol"})
	if err := cfg.ApplyEnv([]string{"RTSPMESH_PLAYER_CAROL_PASSWORD=s3cret-c"}); err != nil {
		t.Fatal(err)
	}
	cfg.Origins[0].Players = []string{"alice", "carol"}
	cfg.Origins = append(cfg.Origins, node.Origin{Name: "b", URL: "rtsp://" + org.Addr(), Players: []string{"bob"}})
	n := startNode(t, cfg)
	addr := n.RTSPAddr().String()
	api := "http://" + n.AdminAddr().String()
	with := func(user, pass, path string) string {
		return fmt.Sprintf("rtsp://%s:%s@%s/%s", user, pass, addr, path)
	}

	res := rawDescribe(t, addr, "o/sample.ts", "")
	if res.StatusCode != base.StatusUnauthorized || !strings.Contains(strings.Join(res.Header["WWW-Authenticate"], " "), `Digest realm="rtspmesh"`) {
		t.Fatalf("DESCRIBE without credentials: %d %v", res.StatusCode, res.Header)
	}
	if strings.Contains(strings.Join(res.Header["WWW-Authenticate"], " "), "Basic") {
		t.Fatalf("Basic offered though rtsp.auth.basic is false: %v", res.Header["WWW-Authenticate"])
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret-a"))
	if res := rawDescribe(t, addr, "o/sample.ts", basic); res.StatusCode != base.StatusUnauthorized {
		t.Fatalf("Basic credentials without rtsp.auth.basic: %d", res.StatusCode)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ref := make(chan decoded, 1)
	wg.Go(func() { ref <- decode("rtsp://"+org.Addr()+"/sample.ts", "tcp") })
	type gstResult struct {
		out string
		err error
	}
	gst := make(chan gstResult, 1)
	wg.Go(func() {
		out, err := gstPlayCreds("rtsp://"+addr+"/o/sample.ts", "user-id=carol", "user-pw=s3cret-c")
		gst <- gstResult{out, err}
	})
	ffmpegFrames := frameMD5(t, with("alice", "s3cret-a", "o/sample.ts"), "tcp")
	sameFrames(t, "ffmpeg with alice's credentials", ffmpegFrames, (<-ref).frames(t))
	// gst-launch may report a write to the closed connection after EOS
	// (TEARDOWN): the play itself went to its end.
	if g := <-gst; g.err != nil && !errorAfterEOS(g.out) {
		t.Fatalf("GStreamer with carol's credentials (from the environment): %v\n%s", g.err, g.out)
	}

	refusedAll := []struct{ what, url string }{
		{"no credentials", "rtsp://" + addr + "/o/sample.ts"},
		{"a wrong password", with("alice", "wrong", "o/sample.ts")},
		{"a user not among the origin's players", with("bob", "s3cret-b", "o/sample.ts")},
		{"an unknown user", with("mallory", "s3cret-a", "o/sample.ts")},
	}
	for _, r := range refusedAll {
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-rtsp_transport", "tcp",
			"-i", r.url, "-t", "1", "-f", "null", "-").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "401") {
			t.Errorf("ffmpeg with %s: %v %s, want a 401 refusal", r.what, err, out)
		}
	}
	if out, err := gstPlayCreds("rtsp://"+addr+"/o/sample.ts", "user-id=alice", "user-pw=wrong"); err == nil {
		t.Errorf("GStreamer with a wrong password played:\n%s", out)
	}
	if out, err := gstPlayCreds("rtsp://" + addr + "/o/sample.ts"); err == nil {
		t.Errorf("GStreamer without credentials played:\n%s", out)
	}
	// bob may play origin b.
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-rtsp_transport", "tcp",
		"-i", with("bob", "s3cret-b", "b/sample.ts"), "-t", "1", "-f", "null", "-").CombinedOutput(); err != nil {
		t.Errorf("ffmpeg as bob on origin b: %v %s", err, out)
	}
	failures := metricValue(t, api, "", "rtspmesh_rtsp_auth_failures_total")
	t.Logf("auth: ffmpeg (alice, ha1 in the config) %d frames, GStreamer (carol, password from the environment) played to the end; refused: %d cases; rtspmesh_rtsp_auth_failures_total %v",
		len(ffmpegFrames), len(refusedAll)+2, failures)
	if failures < 4 {
		t.Errorf("rtspmesh_rtsp_auth_failures_total %v, want at least 4", failures)
	}
}
