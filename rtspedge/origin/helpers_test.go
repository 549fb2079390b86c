package origin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

var packetizedSample = sync.OnceValues(func() (*Clip, error) { return Packetize(SampleClip()) })

// testClip is Packetize(SampleClip()), computed once for all tests.
func testClip(t *testing.T) *Clip {
	t.Helper()
	c, err := packetizedSample()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sampleOrigin runs an origin serving the sample at "sample.ts".
func sampleOrigin(t *testing.T) *Origin {
	t.Helper()
	return startOrigin(t, Config{Media: map[string][]byte{"sample.ts": SampleClip()}})
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startOrigin runs an Origin for the test and stops it (checking that Run
// returns cleanly) at cleanup.
func startOrigin(t *testing.T, cfg Config) *Origin {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10 s after cancel")
		}
	})
	return o
}

// videoMD5s runs ffmpeg with args and returns the md5 column of the
// framemd5 lines of stream 0 (the only mapped stream).
func videoMD5s(t *testing.T, ctx context.Context, args ...string) []string {
	t.Helper()
	full := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)
	full = append(full, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "framemd5", "-")
	cmd := exec.CommandContext(ctx, "ffmpeg", full...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, stderr.String())
		}
		t.Fatalf("ffmpeg: %v", err)
	}
	var sums []string
	for _, line := range strings.Split(out.String(), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 6 {
			t.Fatalf("unexpected framemd5 line %q", line)
		}
		sums = append(sums, strings.TrimSpace(f[5]))
	}
	return sums
}
