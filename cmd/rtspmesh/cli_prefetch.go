package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rtspmesh/rtspmesh/node"
)

const prefetchAbout = `rtspmesh prefetch: fill <origin>/<path> on a running node now, without a
player (warm a branch before an event). The node fills it from a peer that
holds it, else from the origin (asking it for Speed: faster than real time).
On a terminal a progress line shows bytes, media time done of the total,
rate, speed and ETA; piped, only the final line is written. At the end it
says how long the fill took and where the stream came from. With --no-wait
it returns once the fill has started.

Usage: rtspmesh prefetch [flags] <origin>/<path>`

// prefetchPoll is how often prefetch asks the node whether the fill ended,
// so the time it reports is that close to the fill's own.
const prefetchPoll = 100 * time.Millisecond

func runPrefetch(ctx context.Context, args []string, stdio stdio) error {
	var noWait bool
	var every time.Duration
	c, af, pos, err := operator("prefetch", prefetchAbout, args, stdio, 1, func(fs *flagSet) {
		fs.BoolVar(&noWait, "no-wait", false, "return once the fill has started")
		fs.DurationVar(&every, "interval", time.Second, "how often to show progress (on a terminal)")
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
	tty := isTerminal(progress)
	fmt.Fprintf(progress, "filling %s %s\n", path, from)
	start := time.Now()
	tick := time.NewTicker(min(every, prefetchPoll))
	defer tick.Stop()
	var (
		s     node.StreamStatus
		shown time.Time // when the progress line was last written
	)
	for {
		if _, err := c.do(ctx, http.MethodGet, "/api/v1/streams/"+ans.Stream.ID, nil, &s); err != nil {
			return fmt.Errorf("follow the fill of %s: %w", path, err)
		}
		took := time.Since(start)
		if !s.Filling {
			if tty && !shown.IsZero() {
				fmt.Fprint(progress, "\r\x1b[K")
			}
			if af.json {
				return printJSON(stdio.out, node.PrefetchAnswer{Stream: s, Served: ans.Served, Source: s.Source})
			}
			if s.State != "complete" {
				return fmt.Errorf("%s: %w (state %s, %s stored): run prefetch again to resume", path, errFillIncomplete, s.State, humanBytes(s.Bytes))
			}
			_, err := fmt.Fprintln(stdio.out, completeLine(s, took, fromText(ans.Served, s.Source)))
			return err
		}
		if tty && s.Fill != nil && time.Since(shown) >= every {
			fmt.Fprintf(progress, "\r\x1b[K  %s", progressLine(*s.Fill))
			shown = time.Now()
		}
		select {
		case <-ctx.Done():
			if tty && !shown.IsZero() {
				fmt.Fprintln(progress)
			}
			return fmt.Errorf("stopped following %s (the node keeps filling it): %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// progressLine shows a fill in progress: bytes, media time done of the
// total, rate, speed and ETA.
func progressLine(p node.FillProgress) string {
	media := seconds(p.MediaDone)
	if p.MediaTotal > 0 {
		media += " of " + seconds(p.MediaTotal)
	}
	line := fmt.Sprintf("%s, %s, %s, %.1fx", humanBytes(p.Bytes), media, bitRate(p.RateBits), p.Speed)
	if p.ETA > 0 {
		line += ", ETA " + seconds(p.ETA)
	}
	return line
}

// completeLine is the final line of a complete prefetch that took took.
func completeLine(s node.StreamStatus, took time.Duration, from string) string {
	secs := max(took.Seconds(), 0.001)
	return fmt.Sprintf("complete: %s, %d segments, %s of media in %s (%.1fx real time, %s), %s", humanBytes(s.Bytes), s.Segments,
		seconds(s.Duration), took.Round(100*time.Millisecond), s.Duration/secs, bitRate(float64(s.Bytes)*8/secs), from)
}

// seconds shows a media time in whole seconds (tenths under 10 s).
func seconds(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + "s"
	}
	return time.Duration(v * float64(time.Second)).Round(time.Second).String()
}

// bitRate shows bits per second in kbit/s or Mbit/s.
func bitRate(bps float64) string {
	if bps >= 1e6 {
		return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
	}
	return fmt.Sprintf("%.0f kbit/s", bps/1e3)
}

// isTerminal says whether w is a terminal, where a progress line may be
// rewritten in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
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
