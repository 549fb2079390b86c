package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the process's one slog handler (text or json on w, at
// level) and routes the libraries' logs through it: slog.Default (and the
// standard log package), go-libp2p (gologshim) and the go-log/zap loggers of
// go-libp2p-kad-dht and boxo, tagged component=libp2p.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log.level: %q is not a level; write debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log.format: %q is not a format; write text or json", format)
	}
	logger := slog.New(h)
	slog.SetDefault(logger)

	// Libraries speak at warn and above, or info and above when rtspmesh is
	// at debug (their own debug output is a firehose).
	libLevel := max(lvl, slog.LevelWarn)
	if lvl <= slog.LevelDebug {
		libLevel = slog.LevelInfo
	}
	lib := minLevel{Handler: h.WithAttrs([]slog.Attr{slog.String("component", "libp2p")}), min: libLevel}
	gologshim.SetDefaultHandler(lib)
	golog.SetPrimaryCore(zapCore{h: lib})
	setLibLevel(strings.ToLower(libLevel.String()))
	// A first node with an empty routing table is normal, not a warning.
	_ = golog.SetLogLevel("dht/RtRefreshManager", "error")
	return logger, nil
}

// libLevelMu serializes setLibLevel: go-log (v2.9.2, SetLogLevel "*")
// writes its default level, a package variable, outside its lock, and the
// tests run several nodes, each with its newLogger, in one process.
var libLevelMu sync.Mutex

// setLibLevel sets go-log's level for all its loggers, new ones included,
// unless it is that level already: a node's start then writes go-log's
// default level only when it changes, not while other nodes of the
// process create loggers (go-log reads it under its lock).
func setLibLevel(level string) {
	lvl, err := golog.LevelFromString(level)
	if err != nil {
		return
	}
	libLevelMu.Lock()
	defer libLevelMu.Unlock()
	if golog.DefaultLevel() == lvl {
		return
	}
	_ = golog.SetLogLevel("*", level)
}

// minLevel drops records below min before they reach the handler.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: m.Handler.WithAttrs(as), min: m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: m.Handler.WithGroup(name), min: m.min}
}

// zapCore is a zapcore.Core that writes go-log (zap) entries to a slog handler.
type zapCore struct{ h slog.Handler }

func (c zapCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), zapToSlogLevel(l))
}

func (c zapCore) With(fields []zapcore.Field) zapcore.Core {
	return zapCore{h: c.h.WithAttrs(zapAttrs(fields))}
}

func (c zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, zapToSlogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(zapAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (zapCore) Sync() error { return nil }

func zapToSlogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func zapAttrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	return attrs
}
