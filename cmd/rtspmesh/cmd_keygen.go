package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/rtspmesh/rtspmesh/mesh"
)

const keygenAbout = `rtspmesh keygen: write a new pre-shared key for a private mesh to FILE
(mode 0600). Copy the file to every node and set mesh.psk_file to it; nodes
with another key, or none, cannot connect. A private mesh is TCP-only (no
QUIC). An existing FILE is never overwritten. FILE "-" writes to stdout.

Usage: rtspmesh keygen FILE`

func runKeygen(_ context.Context, args []string, stdio stdio) error {
	flags := newFlagSet("keygen", keygenAbout)
	if err := flags.parse(args, stdio.out); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return &usageError{cmd: "keygen", err: errors.New("want exactly one argument: the key FILE")}
	}
	path := flags.Arg(0)
	if path == "-" {
		return mesh.GenerateKey(stdio.out)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; it is not overwritten (remove it first, or choose another name)", path)
	}
	if err != nil {
		return err
	}
	if err := mesh.GenerateKey(f); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(stdio.err, "wrote a new mesh key to %s; copy it to every node and set mesh.psk_file\n", path)
	return nil
}
