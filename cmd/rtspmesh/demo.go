package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

const demoUsage = `rtspmesh demo: a mesh on loopback to try with a player.

Usage: rtspmesh demo [--check] [--port N] [--data-dir DIR]

Starts the built-in origin with the embedded sample clip and three nodes on
loopback joined into a mesh (node A is the bootstrap peer of B and C), prints
the URL of each node to paste into VLC or ffplay, and stays up until Ctrl-C.

With --check it plays the clip through A (filled from the origin), then B and
C (filled from A), then A again (a local hit), and the live stream through A
(from the origin) and B (relayed from A) for a few seconds each; it prints a
table and exits non-zero if any play failed.
`

// demoNode is one node of the demo mesh.
type demoNode struct {
	name string
	n    *node.Node
}

func runDemo(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := newFlagSet("demo", demoUsage)
	check := fs.Bool("check", false, "play every node's URL once, print a table, and exit (non-zero on failure)")
	port := fs.Int("port", 8554, "RTSP port of node A; B and C take the next two, the origin the one after (0: pick free ports)")
	dataDir := fs.String("data-dir", "", "keep the nodes' data under this directory (default: a temporary one, removed at exit)")
	if err := fs.parse(args, stdout); err != nil {
		return err
	}
	if *dataDir == "" {
		dir, err := os.MkdirTemp("", "rtspmesh-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*dataDir = dir
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	portAt := func(i int) string {
		if *port == 0 {
			return "127.0.0.1:0"
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(*port+i))
	}

	org, err := origin.New(origin.Config{
		Listen: portAt(3),
		Media:  map[string][]byte{"sample.ts": origin.SampleClip()},
		Live:   map[string][]byte{"live": origin.SampleClip()},
		Logger: logger,
	})
	if err != nil {
		return err
	}
	wg.Go(func() {
		if err := org.Run(ctx); err != nil {
			logger.Error("origin stopped", "err", err)
		}
	})

	var nodes []demoNode
	for i, name := range []string{"A", "B", "C"} {
		cfg := node.Defaults()
		cfg.DataDir = fmt.Sprintf("%s/%s", *dataDir, name)
		cfg.RTSP.Listen = portAt(i)
		cfg.RTSP.UDPRTPListen, cfg.RTSP.UDPRTCPListen = "", ""
		cfg.RTSP.Transports = []string{"tcp"}
		cfg.Admin.Listen = ""
		cfg.Origins = []node.Origin{{Name: "demo", URL: "rtsp://" + org.Addr()}}
		cfg.Mesh.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.Mesh.MDNS = false
		if len(nodes) > 0 {
			cfg.Mesh.Bootstrap = nodes[0].n.MeshAddrs()
		}
		n, err := node.New(cfg, logger.With("node", name))
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		wg.Go(func() {
			if err := n.Run(ctx); err != nil {
				logger.Error("node stopped", "node", name, "err", err)
			}
		})
		select {
		case <-n.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
		nodes = append(nodes, demoNode{name: name, n: n})
	}

	const path, livePath = "demo/sample.ts", "demo/live"
	fmt.Fprintf(stdout, "origin  rtsp://%s/sample.ts  (live: rtsp://%s/live)\n", org.Addr(), org.Addr())
	for _, d := range nodes {
		fmt.Fprintf(stdout, "node %s  rtsp://%s/%s  live: rtsp://%s/%s  (peer %s)\n",
			d.name, d.n.RTSPAddr(), path, d.n.RTSPAddr(), livePath, shortID(d.n.PeerID()))
	}
	if !*check {
		fmt.Fprintln(stdout, "\nPaste a node URL into VLC or `ffplay -rtsp_transport tcp URL`. Ctrl-C stops.")
		<-ctx.Done()
		return nil
	}
	return demoCheck(ctx, stdout, nodes, path, livePath)
}

// demoCheck plays the clip through A, then B and C, then A again and the
// live stream through A and B, and prints where each play came from.
func demoCheck(ctx context.Context, stdout io.Writer, nodes []demoNode, path, livePath string) error {
	type play struct {
		d     demoNode
		path  string
		after time.Duration // from the start of its phase
		limit time.Duration // 0: to the end
	}
	type row struct {
		node, stream, source string
		res                  playResult
		err                  error
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	const liveFor = 4 * time.Second
	phases := [][]play{
		{{a, path, 0, 0}, {b, path, 500 * time.Millisecond, 0}, {c, path, time.Second, 0}},
		// A's second play comes after its recording is complete; the live
		// stream's relay on B starts once A has sealed some of it.
		{{a, path, 0, 0}, {a, livePath, 0, liveFor}, {b, livePath, 1500 * time.Millisecond, liveFor}},
	}
	var rows []row
	for _, phase := range phases {
		start := time.Now()
		got := make([]row, len(phase))
		var wg sync.WaitGroup
		for i, p := range phase {
			select {
			case <-time.After(time.Until(start.Add(p.after))):
			case <-ctx.Done():
				return ctx.Err()
			}
			before, _ := p.d.n.Stream(p.path)
			wg.Go(func() {
				url := fmt.Sprintf("rtsp://%s/%s", p.d.n.RTSPAddr(), p.path)
				res, err := playOnce(ctx, url, p.limit)
				src := "origin"
				if before.State == "complete" {
					src = "local"
				} else if in, ierr := p.d.n.Stream(p.path); ierr == nil && in.Source != "origin" {
					src = "peer " + peerName(nodes, in.Source)
				}
				stream := "vod"
				if p.limit > 0 {
					stream = "live"
				}
				got[i] = row{node: p.d.name, stream: stream, source: src, res: res, err: err}
			})
		}
		wg.Wait()
		rows = append(rows, got...)
	}

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTREAM\tFROM\tPLAY→FIRST PACKET\tPACKETS\tDURATION\tRESULT")
	var failed bool
	for _, r := range rows {
		result := "ok"
		if r.err != nil {
			result = r.err.Error()
			failed = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.node, r.stream, r.source,
			r.res.firstPacket.Round(100*time.Microsecond), r.res.packets, r.res.duration.Round(100*time.Millisecond), result)
	}
	tw.Flush()
	if failed {
		return errors.New("demo check: a play failed")
	}
	return nil
}

func peerName(nodes []demoNode, id string) string {
	for _, d := range nodes {
		if d.n.PeerID() == id {
			return d.name
		}
	}
	return shortID(id)
}

func shortID(id string) string {
	if len(id) > 12 {
		return "…" + id[len(id)-8:]
	}
	return id
}
