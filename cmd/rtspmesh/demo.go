package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

const demoUsage = `rtspmesh demo: a mesh on loopback to try with a player.

Usage: rtspmesh demo [--check] [--port N] [--udp-port N] [--admin-port N] [--data-dir DIR]

Starts the built-in origin with the embedded sample clip (sample.ts, and
live: the clip looped) and three nodes on loopback joined into a mesh (node
A is the bootstrap peer of B and C). Each node offers RTSP over TCP and UDP
and runs its admin API and dashboard. It prints each node's stream URLs,
a player command for each transport and the admin URL (for the dashboard
and rtspmesh status --admin), and stays up until Ctrl-C.

Ports: node A takes --port (RTSP), --udp-port and the next (RTP/RTCP) and
--admin-port; B and C take the next ones; the origin takes --port + 3.
--port 0 picks free ports for everything.

With --check it plays the clip through A (filled from the origin), then B and
C (filled from A), then A again (a local hit) and C over UDP, and the live
stream through A (from the origin) and B (relayed from A) for a few seconds
each; then it asks each node's admin API for its status. It prints both
tables and exits non-zero if a play or a status query failed.
`

// demoNode is one node of the demo mesh.
type demoNode struct {
	name string
	n    *node.Node
}

func runDemo(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := newFlagSet("demo", demoUsage)
	check := fs.Bool("check", false, "play every node's URL once, query every admin API, print tables, and exit (non-zero on failure)")
	port := fs.Int("port", 8554, "RTSP port of node A; B and C take the next two, the origin the one after (0: pick free ports for everything)")
	udpPort := fs.Int("udp-port", 8000, "UDP RTP port of node A (RTCP: the next); B and C take the next pairs")
	adminPort := fs.Int("admin-port", 9554, "admin API and dashboard port of node A; B and C take the next two")
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

	// at is the loopback address of port base+i, or a free port.
	at := func(base, i int) string {
		if *port == 0 {
			return "127.0.0.1:0"
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i))
	}

	org, err := origin.New(origin.Config{
		Listen: at(*port, 3),
		Media:  map[string][]byte{origin.SamplePath: origin.SampleClip()},
		Live:   map[string][]byte{origin.SampleLivePath: origin.SampleClip()},
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

	path, livePath := "demo/"+origin.SamplePath, "demo/"+origin.SampleLivePath
	// Each stream's origin session is opened by its designated filler (the
	// node closest to it): the clip's is named A, before any node starts,
	// so that "A pulls from the origin, B and C from A" and the logs' node
	// names are the banner's.
	if err := demoNameFiller(*dataDir, "rtsp://"+org.Addr()+"/"+origin.SamplePath, logger); err != nil {
		return err
	}
	var nodes []demoNode
	for i, name := range demoNames {
		cfg := node.Defaults()
		cfg.DataDir = filepath.Join(*dataDir, name)
		cfg.RTSP.Listen = at(*port, i)
		cfg.RTSP.Transports = []string{"tcp", "udp"}
		cfg.RTSP.UDPRTPListen, cfg.RTSP.UDPRTCPListen = at(*udpPort, 2*i), at(*udpPort, 2*i+1)
		if *port == 0 {
			cfg.RTSP.UDPRTCPListen = "" // a free even/odd pair
		}
		cfg.Admin.Listen = at(*adminPort, i)
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

	// The nodes agree on each stream's filler once they know each other.
	if err := demoJoined(ctx, nodes); err != nil {
		return err
	}
	// The live stream's filler plays it first (from the origin), another
	// node next (a relay of it).
	live := demoFillerFirst(slices.Clone(nodes), "rtsp://"+org.Addr()+"/"+origin.SampleLivePath)
	fmt.Fprintf(stdout, "origin  rtsp://%s/%s  (live: rtsp://%s/%s)\n", org.Addr(), origin.SamplePath, org.Addr(), origin.SampleLivePath)
	for _, d := range nodes {
		printDemoNode(stdout, d, path, livePath)
	}
	if !*check {
		fmt.Fprintln(stdout, "\nPaste a URL into VLC or run a player command; open an admin URL for the dashboard. Ctrl-C stops.")
		<-ctx.Done()
		return nil
	}
	return demoCheck(ctx, stdout, nodes, live, path, livePath)
}

// demoJoined waits until every node is connected to the two others and
// counts all three as mesh members (the filler rule's view, which follows
// the connection), so that they agree on each stream's designated filler.
func demoJoined(ctx context.Context, nodes []demoNode) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		joined := true
		for _, d := range nodes {
			joined = joined && len(d.n.Peers()) == len(nodes)-1 && len(d.n.Members()) == len(nodes)
		}
		if joined {
			return nil
		}
		select {
		case <-ctx.Done():
			var seen []string
			for _, d := range nodes {
				var peers []string
				for _, p := range d.n.Peers() {
					peers = append(peers, p.ID)
				}
				seen = append(seen, fmt.Sprintf("%s (%s) connected to %q, members %q", d.name, d.n.PeerID(), peers, d.n.Members()))
			}
			return fmt.Errorf("demo nodes did not join each other: %w; %s", ctx.Err(), strings.Join(seen, "; "))
		case <-tick.C:
		}
	}
}

// demoNames are the demo's nodes, in the order they start: A is the
// bootstrap peer of the others.
var demoNames = []string{"A", "B", "C"}

// demoNameFiller gives the data directory named A under dataDir the
// identity of the designated filler of the stream at originURL: the
// nodes' identities (peer.key) are read or made first, and the directory
// of the one closest to the stream's key is swapped with A's (with what
// it holds, when kept from an earlier demo by --data-dir).
func demoNameFiller(dataDir, originURL string, logger *slog.Logger) error {
	key, err := node.CanonicalKey(originURL)
	if err != nil {
		return err
	}
	ids := make([]string, len(demoNames))
	for i, name := range demoNames {
		id, err := mesh.Identity(filepath.Join(dataDir, name), logger)
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		ids[i] = id.String()
	}
	i := slices.Index(ids, mesh.ClosestMember(key, ids, nil))
	if i <= 0 {
		return nil
	}
	a, other := filepath.Join(dataDir, demoNames[0]), filepath.Join(dataDir, demoNames[i])
	tmp := a + ".swap"
	for _, mv := range [][2]string{{a, tmp}, {other, a}, {tmp, other}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			return fmt.Errorf("demo data directories: %w", err)
		}
	}
	return nil
}

// demoFillerFirst moves the designated filler of the stream at originURL
// to the front.
func demoFillerFirst(nodes []demoNode, originURL string) []demoNode {
	key, err := node.CanonicalKey(originURL)
	if err != nil {
		return nodes
	}
	id := nodes[0].n.FillerOf(key).ID
	slices.SortStableFunc(nodes, func(x, y demoNode) int {
		switch {
		case x.n.PeerID() == id && y.n.PeerID() != id:
			return -1
		case y.n.PeerID() == id && x.n.PeerID() != id:
			return 1
		}
		return 0
	})
	return nodes
}

// printDemoNode prints what a person needs to use node d.
func printDemoNode(w io.Writer, d demoNode, path, livePath string) {
	rtsp, admin := d.n.RTSPAddr().String(), d.n.AdminAddr().String()
	vod, live := "rtsp://"+rtsp+"/"+path, "rtsp://"+rtsp+"/"+livePath
	fmt.Fprintf(w, "\nnode %s  (peer %s)\n", d.name, shortID(d.n.PeerID()))
	fmt.Fprintf(w, "  vod    %s\n", vod)
	fmt.Fprintf(w, "  live   %s\n", live)
	fmt.Fprintf(w, "  play   ffplay -rtsp_transport tcp %s\n", vod)
	fmt.Fprintf(w, "         ffplay -rtsp_transport udp %s\n", vod)
	fmt.Fprintf(w, "  admin  http://%s/  (dashboard; rtspmesh status --admin %s)\n", admin, admin)
}

// demoCheck plays the clip through A (its designated filler), then B and
// C, then A again (and C over UDP) and the live stream through live[0] (its
// filler) and live[1], and prints where each play came from; then each
// node's status from its admin API.
func demoCheck(ctx context.Context, stdout io.Writer, nodes, live []demoNode, path, livePath string) error {
	type play struct {
		d         demoNode
		path      string
		transport string
		after     time.Duration // from the start of its phase
		limit     time.Duration // 0: to the end
	}
	type row struct {
		node, stream, transport, source string
		res                             playResult
		err                             error
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	la, lb := live[0], live[1]
	const liveFor = 4 * time.Second
	phases := [][]play{
		{{a, path, "tcp", 0, 0}, {b, path, "tcp", 500 * time.Millisecond, 0}, {c, path, "tcp", time.Second, 0}},
		// The second plays of A and C come after their recordings are
		// complete; the live stream's relay on B starts once A has sealed
		// some of it.
		{{a, path, "tcp", 0, 0}, {c, path, "udp", 0, 0}, {la, livePath, "tcp", 0, liveFor}, {lb, livePath, "tcp", 1500 * time.Millisecond, liveFor}},
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
				res, err := playOnce(ctx, url, p.transport, p.limit)
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
				got[i] = row{node: p.d.name, stream: stream, transport: p.transport, source: src, res: res, err: err}
			})
		}
		wg.Wait()
		rows = append(rows, got...)
	}

	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTREAM\tOVER\tFROM\tPLAY→FIRST PACKET\tPACKETS\tDURATION\tRESULT")
	var failed bool
	for _, r := range rows {
		result := "ok"
		if r.err != nil {
			result = r.err.Error()
			failed = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.node, r.stream, r.transport, r.source,
			r.res.firstPacket.Round(100*time.Microsecond), r.res.packets, r.res.duration.Round(100*time.Millisecond), result)
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	if !demoStatus(ctx, stdout, nodes) {
		failed = true
	}
	if failed {
		return errors.New("demo check: a play or a status query failed")
	}
	return nil
}

// demoStatus asks each node's admin API for its status, as `rtspmesh status
// --admin` does, prints a table and reports whether every node answered
// for itself.
func demoStatus(ctx context.Context, stdout io.Writer, nodes []demoNode) bool {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADMIN API\tPEERS\tRECORDINGS\tSENT TO PLAYERS\tWAN SAVED\tFROM ORIGINS\tRESULT")
	ok := true
	for _, d := range nodes {
		addr := d.n.AdminAddr().String()
		var st node.NodeStatus
		c, err := (&adminFlags{admin: addr, timeout: 10 * time.Second}).client()
		if err == nil {
			_, err = c.do(ctx, http.MethodGet, "/api/v1/node", nil, &st)
		}
		if err == nil && st.PeerID != d.n.PeerID() {
			err = fmt.Errorf("answered for peer %s", shortID(st.PeerID))
		}
		result := "ok"
		if err != nil {
			result, ok = err.Error(), false
		}
		fmt.Fprintf(tw, "%s\thttp://%s/\t%d\t%d\t%s\t%s\t%s\t%s\n", d.name, addr, st.Peers, st.Recordings,
			humanBytes(st.PlayerBytes), humanBytes(st.WANSaved), humanBytes(st.FillBytesOrigin), result)
	}
	tw.Flush()
	return ok
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
