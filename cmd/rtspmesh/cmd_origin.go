package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

const originAbout = `rtspmesh origin: run the built-in RTSP origin, for tests, demos and trying
the mesh. It serves MPEG-TS files (H.264 + AAC) as seekable VOD, loops files
as live streams, and speaks x-RTP-Meta-Info to caching proxies that ask.
With no --media and no --live it serves the embedded sample clip as
sample.ts (VOD) and live (the clip looped), as rtspmesh demo does.

Usage: rtspmesh origin [--listen host:port] [--media DIR] [--live NAME=FILE ...]`

func runOrigin(ctx context.Context, args []string, stdio stdio) error {
	fs := newFlagSet("origin", originAbout)
	listen := fs.String("listen", ":8555", "RTSP `host:port` to listen on")
	udpRTP := fs.String("udp-rtp", "", "UDP `host:port` for RTP (even port; with --udp-rtcp enables UDP)")
	udpRTCP := fs.String("udp-rtcp", "", "UDP `host:port` for RTCP (the RTP port + 1)")
	mediaDir := fs.String("media", "", "serve every *.ts file of `DIR` as VOD under its file name")
	var live, cacheControl listFlag
	fs.Var(&live, "live", "loop an MPEG-TS file as a live stream, repeatable: --live `NAME=FILE`")
	fs.Var(&cacheControl, "cache-control", "send a Cache-Control header for a path, repeatable: --cache-control `PATH=VALUE`")
	noMeta := fs.Bool("no-meta-info", false, "ignore x-RTP-Meta-Info requests (plain RTP only)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := fs.parse(args, stdio.out); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{cmd: "origin", err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	logger, err := newLogger(stdio.err, *logLevel, *logFormat)
	if err != nil {
		return &usageError{cmd: "origin", err: err}
	}
	cfg := origin.Config{
		Listen:          *listen,
		UDPRTPAddress:   *udpRTP,
		UDPRTCPAddress:  *udpRTCP,
		MediaDir:        *mediaDir,
		Live:            map[string][]byte{},
		CacheControl:    map[string]string{},
		DisableMetaInfo: *noMeta,
		Logger:          logger,
	}
	for _, nf := range live {
		name, file, ok := strings.Cut(nf, "=")
		if !ok || name == "" || file == "" {
			return &usageError{cmd: "origin", err: fmt.Errorf("--live %q: write NAME=FILE", nf)}
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--live %s: %w", name, err)
		}
		cfg.Live[name] = b
	}
	for _, pv := range cacheControl {
		p, v, ok := strings.Cut(pv, "=")
		if !ok || p == "" {
			return &usageError{cmd: "origin", err: fmt.Errorf("--cache-control %q: write PATH=VALUE", pv)}
		}
		cfg.CacheControl[p] = v
	}
	if cfg.MediaDir == "" && len(cfg.Live) == 0 {
		cfg.Media = map[string][]byte{origin.SamplePath: origin.SampleClip()}
		cfg.Live[origin.SampleLivePath] = origin.SampleClip()
	}
	o, err := origin.New(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdio.out, "rtspmesh origin %s\n", versionString())
	for _, p := range o.Paths() {
		fmt.Fprintf(stdio.out, "  rtsp://%s/%s\n", reachable(o.Addr()), p)
	}
	return o.Run(ctx)
}
