package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/rtspmesh/rtspmesh/node"
)

// operatorCommands are the subcommands that talk to a running node.
func operatorCommands() []command {
	return []command{
		{"status", "show a running node: peer id, store use, players, hit ratio", runStatus},
		{"streams", "list a running node's recordings", runStreams},
		{"peers", "list a running node's mesh peers and how many recordings each holds", runPeers},
		{"prefetch", "fill <origin>/<path> on a running node now, without a player", runPrefetch},
		{"pin", "keep a recording from quota eviction", runPin(true)},
		{"unpin", "let the quota evict a pinned recording again", runPin(false)},
		{"evict", "remove a recording from a running node's store", runEvict},
	}
}

const adminFlagsHelp = `
Flags --admin (default ` + defaultAdmin + `) and --token select the node; the node's
own RTSPMESH_ADMIN_LISTEN and RTSPMESH_ADMIN_TOKEN set them from the environment.
--json prints JSON.`

// operator parses an operator command's flags and returns its client and
// arguments; want is the number of arguments it takes.
func operator(name, about string, args []string, stdio stdio, want int, extra func(*flagSet)) (*adminClient, *adminFlags, []string, error) {
	fs := newFlagSet(name, about+"\n"+adminFlagsHelp)
	var af adminFlags
	af.register(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err := parseAll(fs, args, stdio.out)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(pos) != want {
		return nil, nil, nil, &usageError{cmd: name, err: fmt.Errorf("want %d argument(s), got %d", want, len(pos))}
	}
	c, err := af.client()
	if err != nil {
		return nil, nil, nil, &usageError{cmd: name, err: err}
	}
	return c, &af, pos, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runStatus(ctx context.Context, args []string, stdio stdio) error {
	c, af, _, err := operator("status", "rtspmesh status: show a running node.\n\nUsage: rtspmesh status [flags]", args, stdio, 0, nil)
	if err != nil {
		return err
	}
	var st node.NodeStatus
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/node", nil, &st); err != nil {
		return err
	}
	if af.json {
		return printJSON(stdio.out, st)
	}
	tw := tabwriter.NewWriter(stdio.out, 0, 4, 2, ' ', 0)
	peer := st.PeerID
	if peer == "" {
		peer = "(mesh disabled)"
	}
	quota := "no quota"
	if st.StoreQuota > 0 {
		quota = fmt.Sprintf("of %s (%.0f%%)", humanBytes(uint64(st.StoreQuota)), 100*float64(st.StoreBytes)/float64(st.StoreQuota))
	}
	ratio := "–"
	if st.Hits+st.Misses > 0 {
		ratio = fmt.Sprintf("%.0f%% (%d hits, %d misses)", 100*float64(st.Hits)/float64(st.Hits+st.Misses), st.Hits, st.Misses)
	}
	fmt.Fprintf(tw, "node\t%s\n", c.base)
	fmt.Fprintf(tw, "peer id\t%s\n", peer)
	fmt.Fprintf(tw, "version\t%s\n", st.Version)
	fmt.Fprintf(tw, "uptime\t%s\n", (time.Duration(st.Uptime) * time.Second).Round(time.Second))
	fmt.Fprintf(tw, "rtsp\t%s\n", st.RTSPAddr)
	fmt.Fprintf(tw, "store\t%s %s, %d recordings\n", humanBytes(uint64(st.StoreBytes)), quota, st.Recordings)
	fmt.Fprintf(tw, "now\t%d players, %d fills, %d peers\n", st.Players, st.Fills, st.Peers)
	fmt.Fprintf(tw, "hit ratio\t%s\n", ratio)
	fmt.Fprintf(tw, "WAN saved\t%s of %s sent to players came from no origin\n", humanBytes(st.WANSaved), humanBytes(st.PlayerBytes))
	fmt.Fprintf(tw, "filled\t%s from origins (over the WAN), %s from peers\n", humanBytes(st.FillBytesOrigin), humanBytes(st.FillBytesPeer))
	return tw.Flush()
}

func runStreams(ctx context.Context, args []string, stdio stdio) error {
	c, af, _, err := operator("streams", "rtspmesh streams: list a running node's recordings.\n\nUsage: rtspmesh streams [flags]", args, stdio, 0, nil)
	if err != nil {
		return err
	}
	var list []node.StreamStatus
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/streams", nil, &list); err != nil {
		return err
	}
	if af.json {
		return printJSON(stdio.out, list)
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(stdio.out, "no recordings")
		return err
	}
	tw := tabwriter.NewWriter(stdio.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPATH\tSTATE\tSOURCE\tDURATION\tSIZE\tHITS\tPLAYERS\tPINNED")
	for _, s := range list {
		path := s.Path
		if path == "" {
			path = s.Key
		}
		pinned := ""
		if s.Pinned {
			pinned = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.ID[:12], path, s.State, sourceText(s),
			(time.Duration(s.Duration * float64(time.Second))).Round(time.Second), humanBytes(s.Bytes), s.Hits, s.Players, pinned)
	}
	return tw.Flush()
}

func sourceText(s node.StreamStatus) string {
	if s.SourceKind == "peer" {
		return "peer " + shortID(s.Source)
	}
	return s.Source
}

func runPeers(ctx context.Context, args []string, stdio stdio) error {
	c, af, _, err := operator("peers", "rtspmesh peers: list a running node's mesh peers.\n\nUsage: rtspmesh peers [flags]", args, stdio, 0, nil)
	if err != nil {
		return err
	}
	var peers []node.PeerStatus
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/peers", nil, &peers); err != nil {
		return err
	}
	if af.json {
		return printJSON(stdio.out, peers)
	}
	if len(peers) == 0 {
		_, err := fmt.Fprintln(stdio.out, "no peers connected")
		return err
	}
	tw := tabwriter.NewWriter(stdio.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tRTT\tHOLDS\tADDRESS")
	for _, p := range peers {
		rtt := "–"
		if p.RTT > 0 {
			rtt = fmt.Sprintf("%.1fms", p.RTT*1000)
		}
		addr := ""
		if len(p.Addrs) > 0 {
			addr = p.Addrs[0]
		}
		holds := "?" // it did not answer: p.CatalogueError (--json) says why
		if p.Holds != nil {
			holds = fmt.Sprintf("%d", len(p.Holds))
			if p.HoldsTruncated {
				holds += "+"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, rtt, holds, addr)
	}
	return tw.Flush()
}

func runEvict(ctx context.Context, args []string, stdio stdio) error {
	c, af, pos, err := operator("evict", `rtspmesh evict: remove a recording from a running node's store. The node
stops announcing it to the mesh. A recording still filling cannot be evicted.

Usage: rtspmesh evict [flags] <id | id prefix | origin/path>`, args, stdio, 1, nil)
	if err != nil {
		return err
	}
	s, err := c.findStream(ctx, pos[0])
	if err != nil {
		return err
	}
	var out map[string]any
	if _, err := c.do(ctx, http.MethodDelete, "/api/v1/streams/"+s.ID, nil, &out); err != nil {
		return err
	}
	if af.json {
		return printJSON(stdio.out, out)
	}
	_, err = fmt.Fprintf(stdio.out, "evicted %s (%s, %s)\n", displayName(s), s.ID[:12], humanBytes(s.Bytes))
	return err
}

func displayName(s node.StreamStatus) string {
	if s.Path != "" {
		return s.Path
	}
	return s.Key
}

func runPin(pin bool) func(context.Context, []string, stdio) error {
	name, method, verb := "pin", http.MethodPost, "pinned"
	about := `rtspmesh pin: keep a recording from quota eviction (evict still removes it).

Usage: rtspmesh pin [flags] <id | id prefix | origin/path>`
	if !pin {
		name, method, verb = "unpin", http.MethodDelete, "unpinned"
		about = `rtspmesh unpin: let the quota evict a pinned recording again.

Usage: rtspmesh unpin [flags] <id | id prefix | origin/path>`
	}
	return func(ctx context.Context, args []string, stdio stdio) error {
		c, af, pos, err := operator(name, about, args, stdio, 1, nil)
		if err != nil {
			return err
		}
		s, err := c.findStream(ctx, pos[0])
		if err != nil {
			return err
		}
		var out node.StreamStatus
		if _, err := c.do(ctx, method, "/api/v1/streams/"+s.ID+"/pin", nil, &out); err != nil {
			return err
		}
		if af.json {
			return printJSON(stdio.out, out)
		}
		_, err = fmt.Fprintf(stdio.out, "%s %s (%s)\n", verb, displayName(out), out.ID[:12])
		return err
	}
}

// humanBytes prints a byte count in binary units.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var errFillIncomplete = errors.New("the fill ended before the stream was complete")
