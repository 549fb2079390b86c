package origin

import (
	"context"
	"sync"
	"testing"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
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

// startOrigin runs an Origin for the test and stops it (checking that Run
// returns cleanly) at cleanup.
func startOrigin(t *testing.T, cfg Config) *Origin {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger()
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	testkit.Run(t, "origin", o.Run)
	return o
}

// videoMD5s runs ffmpeg with args and returns the md5 of every decoded
// frame of its first video stream (interop.VideoMD5s).
func videoMD5s(t *testing.T, ctx context.Context, args ...string) []string {
	t.Helper()
	sums, _, err := interop.VideoMD5s(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return sums
}
