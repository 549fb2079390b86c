package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/rtspmesh/rtspmesh/node"
)

const nodeAbout = `rtspmesh node: run a caching node. Players connect to
rtsp://<this host>:8554/<origin>/<path>; the node serves each stream from its
store, from a neighbour in the mesh, or from the origin (stored while served).

Usage: rtspmesh node [--config FILE] [flags]

Settings apply in this order: defaults, the config file (--config, or
$RTSPMESH_CONFIG; configs/node.yaml documents every key), RTSPMESH_*
environment variables (RTSPMESH_RTSP_LISTEN, RTSPMESH_DATA_DIR, ...), then
these flags. The node stops cleanly on SIGINT or SIGTERM.`

// nodeFlags maps flag names to config keys; each is applied only when given.
var nodeFlags = []struct{ flag, key, usage string }{
	{"data-dir", "data_dir", "`directory` for the store and the node identity"},
	{"rtsp-listen", "rtsp.listen", "RTSP `host:port` for players"},
	{"log-level", "log.level", "debug, info, warn or error"},
	{"log-format", "log.format", "text or json"},
	{"admin-listen", "admin.listen", "admin API `host:port` (\"\" disables it)"},
	{"psk-file", "mesh.psk_file", "pre-shared key `file` for a private (TCP-only) mesh"},
}

// listFlag collects a repeatable flag; a value may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func runNode(ctx context.Context, args []string, stdio stdio) error {
	fs := newFlagSet("node", nodeAbout)
	configFile := fs.String("config", "", "YAML config `file` (default $RTSPMESH_CONFIG)")
	values := make(map[string]*string, len(nodeFlags))
	for _, f := range nodeFlags {
		values[f.flag] = fs.String(f.flag, "", f.usage+" (sets "+f.key+")")
	}
	var bootstrap, meshListen, sets listFlag
	fs.Var(&bootstrap, "bootstrap", "peer `multiaddr` to join through, repeatable (sets mesh.bootstrap)")
	fs.Var(&meshListen, "mesh-listen", "libp2p listen `multiaddr`, repeatable (sets mesh.listen)")
	noMesh := fs.Bool("no-mesh", false, "run without the mesh (sets mesh.enabled: false)")
	fs.Var(&sets, "set", "set any config key, repeatable: --set `key=value` (e.g. cache.max_bytes=20GiB)")
	printConfig := fs.Bool("print-config", false, "print the resulting config (secrets redacted) and exit")
	if err := fs.parse(args, stdio.out); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{cmd: "node", err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	cfg, err := loadNodeConfig(*configFile, os.Environ())
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, f := range nodeFlags {
		if given[f.flag] {
			if err := cfg.Set(f.key, *values[f.flag]); err != nil {
				return &usageError{cmd: "node", err: fmt.Errorf("--%s: %w", f.flag, err)}
			}
		}
	}
	for _, l := range []struct {
		name, key string
		vals      listFlag
	}{{"bootstrap", "mesh.bootstrap", bootstrap}, {"mesh-listen", "mesh.listen", meshListen}} {
		if given[l.name] {
			_ = cfg.Set(l.key, l.vals.String()) // a list key accepts any text
		}
	}
	if *noMesh {
		cfg.Mesh.Enabled = false
	}
	for _, kv := range sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return &usageError{cmd: "node", err: fmt.Errorf("--set %q: write key=value", kv)}
		}
		if err := cfg.Set(strings.TrimSpace(k), v); err != nil {
			return &usageError{cmd: "node", err: fmt.Errorf("--set: %w", err)}
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if *printConfig {
		_, err := io.WriteString(stdio.out, cfg.String())
		return err
	}

	logger, err := newLogger(stdio.err, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	cfg.ApplyMemoryLimit()
	n, err := node.New(cfg, logger)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
		printBanner(stdio.out, cfg, n)
	case err := <-done:
		return err
	}
	return <-done
}

// loadNodeConfig is defaults, then the file (flag, else $RTSPMESH_CONFIG),
// then the environment.
func loadNodeConfig(file string, environ []string) (node.Config, error) {
	if file == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, node.EnvConfigFile+"="); ok {
				file = v
			}
		}
	}
	cfg := node.Defaults()
	if file != "" {
		var err error
		if cfg, err = node.LoadFile(file); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ApplyEnv(environ); err != nil {
		return cfg, fmt.Errorf("environment: %w", err)
	}
	return cfg, nil
}

// printBanner tells the operator where the node is: its RTSP URLs, peer id
// and multiaddrs. No credential is printed.
func printBanner(w io.Writer, cfg node.Config, n *node.Node) {
	base := "rtsp://" + reachable(n.RTSPAddr().String())
	fmt.Fprintf(w, "rtspmesh node %s\n  rtsp:    %s/<origin>/<path>\n", versionString(), base)
	for _, o := range cfg.Origins {
		fmt.Fprintf(w, "  origin:  %s/%s/...  ->  %s\n", base, o.Name, node.RedactURL(o.URL))
	}
	if id := n.PeerID(); id != "" {
		fmt.Fprintf(w, "  peer id: %s\n", id)
		for _, a := range n.MeshAddrs() {
			fmt.Fprintf(w, "  mesh:    %s\n", a)
		}
	} else {
		fmt.Fprintf(w, "  mesh:    disabled\n")
	}
	if a := n.AdminAddr(); a != nil {
		fmt.Fprintf(w, "  admin:   http://%s/\n", a) // the port bound, for admin.listen port 0
	}
}

// reachable turns a listen address into one a player can dial: an
// unspecified IP (":8554") becomes this machine's host name.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		} else {
			host = "localhost"
		}
	}
	return net.JoinHostPort(host, port)
}
