package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rtspmesh/rtspmesh/node"
)

const prefetchAbout = `rtspmesh prefetch: fill <origin>/<path> on a running node now, without a
player (warm a branch before an event). The node fills it from a peer that
holds it, else from the origin. While it fills, a progress line shows bytes,
segments and rate; at the end it says where the stream came from. With
--no-wait it returns once the fill has started.

Usage: rtspmesh prefetch [flags] <origin>/<path>`

func runPrefetch(ctx context.Context, args []string, stdio stdio) error {
	var noWait bool
	var every time.Duration
	c, af, pos, err := operator("prefetch", prefetchAbout, args, stdio, 1, func(fs *flagSet) {
		fs.BoolVar(&noWait, "no-wait", false, "return once the fill has started")
		fs.DurationVar(&every, "interval", time.Second, "how often to show progress")
	})
	if err != nil {
		return err
	}
	path := strings.TrimPrefix(pos[0], "/")
	var ans node.PrefetchAnswer
	code, err := c.do(ctx, http.MethodPost, "/api/v1/prefetch", node.PrefetchRequest{Path: path}, &ans)
	if err != nil {
		return err
	}
	from := fromText(ans.Served, ans.Source)
	if code == http.StatusOK || noWait {
		if af.json {
			return printJSON(stdio.out, ans)
		}
		if code == http.StatusOK {
			_, err = fmt.Fprintf(stdio.out, "%s is already stored (%s, %s)\n", path, ans.Stream.State, humanBytes(ans.Stream.Bytes))
		} else {
			_, err = fmt.Fprintf(stdio.out, "filling %s %s (id %s)\n", path, from, ans.Stream.ID[:12])
		}
		return err
	}
	// Progress goes to stderr with --json, so stdout stays one JSON document.
	progress := stdio.out
	if af.json {
		progress = stdio.err
	}
	fmt.Fprintf(progress, "filling %s %s\n", path, from)
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var s node.StreamStatus
	for {
		if _, err := c.do(ctx, http.MethodGet, "/api/v1/streams/"+ans.Stream.ID, nil, &s); err != nil {
			return fmt.Errorf("follow the fill of %s: %w", path, err)
		}
		took := time.Since(start)
		if !s.Filling {
			if af.json {
				return printJSON(stdio.out, node.PrefetchAnswer{Stream: s, Served: ans.Served, Source: s.Source})
			}
			if s.State != "complete" {
				return fmt.Errorf("%s: %w (state %s, %s stored): run prefetch again to resume", path, errFillIncomplete, s.State, humanBytes(s.Bytes))
			}
			_, err := fmt.Fprintf(stdio.out, "complete: %s, %d segments, %s of media in %s, %s\n", humanBytes(s.Bytes), s.Segments,
				time.Duration(s.Duration*float64(time.Second)).Round(time.Second), took.Round(100*time.Millisecond), fromText(ans.Served, s.Source))
			return err
		}
		rate := float64(s.Bytes) / max(took.Seconds(), 0.001)
		fmt.Fprintf(progress, "  %s, %d segments, %s/s\n", humanBytes(s.Bytes), s.Segments, humanBytes(uint64(rate)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following %s (the node keeps filling it): %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// fromText says where a prefetch's stream came from.
func fromText(served node.Served, source string) string {
	switch served {
	case node.ServedPeer:
		return "from peer " + source
	case node.ServedOrigin:
		return "from the origin"
	case node.ServedTail:
		return "(a fill already running, from " + source + ")"
	}
	return "(already stored)"
}
