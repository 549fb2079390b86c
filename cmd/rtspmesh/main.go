// Command rtspmesh runs a node of the rtspmesh cooperative RTSP cache, the
// built-in test origin, and the tools around them. `rtspmesh help` lists the
// subcommands; `rtspmesh <command> --help` describes one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rtspmesh/rtspmesh/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stdio is where a subcommand writes: results on out, logs and errors on err.
type stdio struct {
	out, err io.Writer
}

// command is one subcommand.
type command struct {
	name    string
	summary string // one line for the command list
	run     func(ctx context.Context, args []string, io stdio) error
}

func commands() []command {
	return append([]command{
		{"node", "run a caching node (RTSP proxy, store, mesh)", runNode},
		{"origin", "run the built-in RTSP origin (test media, VOD and live)", runOrigin},
		{"demo", "run an origin and three nodes on loopback (what `make run` starts)", demoCommand},
		{"keygen", "write a pre-shared key file for a private mesh", runKeygen},
		{"version", "print the version", runVersion},
	}, operatorCommands()...)
}

// Exit codes: 0 success (and --help), 1 failure, 2 bad usage.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// errHelp reports that --help was asked for and answered.
var errHelp = errors.New("help shown")

// usageError is a mistake on the command line.
type usageError struct {
	cmd string
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// run dispatches args to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, rest, stdio{out: stdout, err: stderr})
		var ue *usageError
		switch {
		case err == nil, errors.Is(err, errHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "rtspmesh %s: %v\nRun 'rtspmesh %s --help' for usage.\n", ue.cmd, ue.err, ue.cmd)
			return exitUsage
		default:
			fmt.Fprintf(stderr, "rtspmesh %s: %v\n", name, err)
			return exitFail
		}
	}
	fmt.Fprintf(stderr, "rtspmesh: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "rtspmesh is a peer-to-peer cooperative cache for RTSP streams.\n\nUsage:\n  rtspmesh <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'rtspmesh <command> --help' for a command's flags.\n")
}

// flagSet is a subcommand's flags plus the text --help prints above them.
type flagSet struct {
	*flag.FlagSet
	about string
}

// newFlagSet makes a subcommand's flag set. about says what the command
// does and gives its usage line; --help prints it above the flag list.
func newFlagSet(name, about string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, about: about}
}

// parse parses args. -h/--help prints the description and flags to stdout
// and returns errHelp; a mistake returns a usageError.
func (fs *flagSet) parse(args []string, stdout io.Writer) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.printHelp(stdout)
		return errHelp
	case err != nil:
		return &usageError{cmd: fs.Name(), err: err}
	}
	return nil
}

func (fs *flagSet) printHelp(w io.Writer) {
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(fs.about))
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintf(w, "\nFlags:\n")
			first = false
		}
		name, use := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n      %s", strings.ReplaceAll(use, "\n", "\n      "))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// demoCommand gives runDemo a logger configured from RTSPMESH_LOG_LEVEL and
// RTSPMESH_LOG_FORMAT (default info, text).
func demoCommand(ctx context.Context, args []string, io stdio) error {
	level, format := "info", "text"
	if v := os.Getenv(node.EnvName("log.level")); v != "" {
		level = v
	}
	if v := os.Getenv(node.EnvName("log.format")); v != "" {
		format = v
	}
	logger, err := newLogger(io.err, level, format)
	if err != nil {
		return err
	}
	return runDemo(ctx, args, io.out, logger)
}
