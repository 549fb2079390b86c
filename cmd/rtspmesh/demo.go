package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
)

// runDemo runs the built-in origin with the sample clip and three nodes on
// loopback. Placeholder until the lead wires it; it already answers --help
// through newFlagSet so the dispatcher's contract holds.
func runDemo(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := newFlagSet("demo", `rtspmesh demo: run the built-in origin with the sample clip and three nodes
on loopback, print each node's RTSP URL and stay up until Ctrl-C.

Usage: rtspmesh demo [--check]`)
	fs.Bool("check", false, "play each URL once, print a table and exit non-zero on any failure")
	if err := fs.parse(args, stdout); err != nil {
		return err
	}
	return errors.New("demo: not wired yet")
}
