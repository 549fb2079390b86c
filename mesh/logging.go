package mesh

import (
	"context"
	"log/slog"

	"github.com/libp2p/go-libp2p/gologshim"
)

// LogLibp2p routes go-libp2p's own log lines (warnings and errors) to h, so
// that the process has one log handler. It is process-wide: call it once,
// at start, before the first Mesh is created.
func LogLibp2p(h slog.Handler) {
	gologshim.SetDefaultHandler(minLevel{h.WithAttrs([]slog.Attr{slog.String("component", "libp2p")}), slog.LevelWarn})
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
