package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// cliNode runs a node with its admin API on 127.0.0.1:0 until the test ends.
func cliNode(t *testing.T, org *origin.Origin, token string, bootstrap []string) *node.Node {
	t.Helper()
	cfg := node.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.RTSP.Listen = "127.0.0.1:0"
	cfg.RTSP.Transports = []string{"tcp"}
	cfg.RTSP.UDPRTPListen, cfg.RTSP.UDPRTCPListen = "", ""
	cfg.Mesh.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Mesh.MDNS = false
	cfg.Mesh.Bootstrap = bootstrap
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Token = token
	cfg.Origins = []node.Origin{{Name: "o", URL: "rtsp://" + org.Addr()}}
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("node did not stop")
		}
	})
	<-n.Ready()
	return n
}

// TestOperatorCommands runs every operator command against real nodes: A
// (with a token) fills from the origin, B fills from A.
func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	media := map[string][]byte{}
	for i := range 16 {
		media[fmt.Sprintf("s%d.ts", i)] = origin.SampleClip()
	}
	org, err := origin.New(origin.Config{Listen: "127.0.0.1:0", Media: media})
	if err != nil {
		t.Fatal(err)
	}
	octx, ocancel := context.WithCancel(context.Background())
	odone := make(chan error, 1)
	go func() { odone <- org.Run(octx) }()
	t.Cleanup(func() { ocancel(); <-odone })

	const token = "s3cret-token-for-tests"
	a := cliNode(t, org, token, nil)
	b := cliNode(t, org, "", a.MeshAddrs())
	// A stream whose designated filler is A (mesh.ClosestMember), so that
	// A's prefetch goes to the origin and B's to A.
	path := ""
	for i := range 16 {
		name := fmt.Sprintf("s%d.ts", i)
		key, err := node.CanonicalKey("rtsp://" + org.Addr() + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if mesh.ClosestMember(key, []string{a.PeerID(), b.PeerID()}, nil) == a.PeerID() {
			path = "o/" + name
			break
		}
	}
	if path == "" {
		t.Fatal("A is the designated filler of none of 16 streams")
	}
	onA := func(args ...string) (int, string, string) {
		return runCmd(t, append(args, "--admin", a.AdminAddr().String(), "--token", token)...)
	}
	onB := func(args ...string) (int, string, string) {
		return runCmd(t, append(args, "--admin", "http://"+b.AdminAddr().String())...)
	}
	ok := func(what string, code int, out, errs string, want ...string) string {
		t.Helper()
		if code != exitOK {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, code, out, errs)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("%s: output lacks %q:\n%s", what, w, out)
			}
		}
		return out
	}
	fails := func(what string, code int, errs, want string) {
		t.Helper()
		if code != exitFail || !strings.Contains(errs, want) {
			t.Fatalf("%s: exit %d, stderr %q; want exit %d and %q", what, code, errs, exitFail, want)
		}
	}

	// The node is down, the token is missing or wrong.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	code, _, errs := runCmd(t, "status", "--admin", closed)
	fails("status of a node that is down", code, errs, "no node is listening at http://"+closed)
	code, _, errs = runCmd(t, "streams", "--admin", a.AdminAddr().String())
	fails("streams without the token", code, errs, "needs its admin token")
	code, _, errs = runCmd(t, "streams", "--admin", a.AdminAddr().String(), "--token", "wrong")
	fails("streams with a wrong token", code, errs, "refused the token")
	if code, _, _ := runCmd(t, "status", "--admin", "ftp://x"); code != exitUsage {
		t.Fatalf("status --admin ftp://x: exit %d, want usage", code)
	}

	code, out, errs := onA("status")
	ok("status", code, out, errs, a.PeerID(), "store", "hit ratio")
	code, out, errs = onA("status", "--json")
	var st node.NodeStatus
	if err := json.Unmarshal([]byte(ok("status --json", code, out, errs)), &st); err != nil || st.PeerID != a.PeerID() {
		t.Fatalf("status --json: %v %+v", err, st)
	}
	code, out, errs = onA("streams")
	ok("streams of an empty node", code, out, errs, "no recordings")

	code, out, errs = onA("prefetch", path, "--interval", "300ms")
	out = ok("prefetch", code, out, errs, "filling "+path+" from the origin", "complete: ", "segments, ", "x real time, ", "bit/s), from the origin\n")
	if strings.Count(out, "\n") != 2 {
		t.Fatalf("prefetch into a pipe writes its first and final lines only:\n%s", out)
	}
	if !strings.Contains(out, "KiB") && !strings.Contains(out, "MiB") {
		t.Fatalf("prefetch shows no byte progress:\n%s", out)
	}
	code, out, errs = onA("prefetch", path)
	ok("prefetch again", code, out, errs, "already stored")
	code, _, errs = onA("prefetch", "nosuch/x")
	fails("prefetch of an unknown origin", code, errs, "unknown origin")

	code, out, errs = onA("streams")
	ok("streams", code, out, errs, "ID", path, "complete", "origin")
	code, out, errs = onA("streams", "--json")
	var list []node.StreamStatus
	if err := json.Unmarshal([]byte(ok("streams --json", code, out, errs)), &list); err != nil || len(list) != 1 {
		t.Fatalf("streams --json: %v %s", err, out)
	}
	id := list[0].ID

	code, out, errs = onA("pin", id[:8])
	ok("pin by id prefix", code, out, errs, "pinned "+path)
	code, out, errs = onA("streams")
	ok("streams after pin", code, out, errs, "yes")
	code, out, errs = onA("unpin", path, "--json")
	var s node.StreamStatus
	if err := json.Unmarshal([]byte(ok("unpin --json", code, out, errs)), &s); err != nil || s.Pinned {
		t.Fatalf("unpin --json: %v %+v", err, s)
	}

	code, out, errs = onB("peers")
	ok("peers", code, out, errs, "PEER", a.PeerID())
	code, out, errs = onB("prefetch", path, "--interval", "100ms")
	ok("prefetch on B", code, out, errs, "from peer "+a.PeerID(), "complete: ")
	code, out, errs = onB("peers", "--json")
	var peers []node.PeerStatus
	if err := json.Unmarshal([]byte(ok("peers --json", code, out, errs)), &peers); err != nil || len(peers) == 0 {
		t.Fatalf("peers --json: %v %s", err, out)
	}
	for _, p := range peers {
		if p.ID == a.PeerID() && (len(p.Holds) != 1 || p.Holds[0].Path != path) {
			t.Fatalf("peers --json on B: A holds %+v (%s), want %s", p.Holds, p.CatalogueError, path)
		}
	}
	code, out, errs = onB("status")
	ok("status of B", code, out, errs, "WAN saved", "from peers")

	code, out, errs = onA("evict", id)
	ok("evict", code, out, errs, "evicted "+path)
	code, out, errs = onA("streams")
	ok("streams after evict", code, out, errs, "no recordings")
	code, _, errs = onA("evict", id)
	fails("evict of an evicted stream", code, errs, "no stream")
	if code, _, _ := onA("evict"); code != exitUsage {
		t.Fatalf("evict without an id: exit %d", code)
	}
}

// TestPrefetchProgressLine: the progress line shows bytes, media time done
// of the total, rate, speed and ETA; output that is not a terminal gets no
// progress lines.
func TestPrefetchProgressLine(t *testing.T) {
	t.Parallel()
	got := progressLine(node.FillProgress{Bytes: 3 << 20, MediaDone: 41.2, MediaTotal: 90, RateBits: 7.2e6, Speed: 7.9, ETA: 6.2})
	if want := "3.0 MiB, 41s of 1m30s, 7.2 Mbit/s, 7.9x, ETA 6.2s"; got != want {
		t.Fatalf("progress line %q, want %q", got, want)
	}
	if got := progressLine(node.FillProgress{Bytes: 512, MediaDone: 3, RateBits: 9e5, Speed: 1}); got != "512 B, 3.0s, 900 kbit/s, 1.0x" {
		t.Fatalf("progress line of a fill of unknown length %q", got)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) || isTerminal(&strings.Builder{}) {
		t.Fatal("a pipe or a buffer taken for a terminal")
	}
}
