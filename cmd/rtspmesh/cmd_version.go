package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

const versionAbout = `rtspmesh version: print the version, Go version and source revision.

Usage: rtspmesh version`

func runVersion(_ context.Context, args []string, stdio stdio) error {
	fs := newFlagSet("version", versionAbout)
	if err := fs.parse(args, stdio.out); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdio.out, "rtspmesh %s (%s)\n", versionString(), runtime.Version())
	return err
}

// versionString is the -X version, else the module version, else "dev",
// followed by the VCS revision when the build recorded one.
func versionString() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	if !ok {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += "+" + rev
		if dirty {
			v += "-dirty"
		}
	}
	return v
}
