package mesh

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestMDNSFindsNeighbour(t *testing.T) {
	t.Parallel()
	a := startNode(t, Config{MDNS: true, Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, nil)
	b := startNode(t, Config{MDNS: true, Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, nil)
	waitFor(t, 20*time.Second, "mDNS neighbours to connect", func() bool {
		return len(a.host.Network().ConnsToPeer(b.host.ID())) > 0
	})
}

func TestLogLibp2pLevel(t *testing.T) {
	t.Parallel()
	h := minLevel{slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelWarn}
	for l, want := range map[slog.Level]bool{slog.LevelDebug: false, slog.LevelInfo: false, slog.LevelWarn: true, slog.LevelError: true} {
		if got := h.WithAttrs(nil).WithGroup("g").Enabled(t.Context(), l); got != want {
			t.Errorf("level %v enabled %v, want %v", l, got, want)
		}
	}
}
