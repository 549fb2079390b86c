package origin

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	o := startOrigin(t, Config{Media: map[string][]byte{"sample.ts": SampleClip()}})
	f := filepath.Join(t.TempDir(), "s.ts")
	os.WriteFile(f, SampleClip(), 0o644)
	want := videoMD5s(t, t.Context(), "-i", f)
	start := time.Now()
	got := videoMD5s(t, t.Context(), "-rtsp_transport", "tcp", "-i", "rtsp://"+o.Addr()+"/sample.ts")
	t.Logf("took %v; got %d frames want %d", time.Since(start), len(got), len(want))
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("frame %d differs", i)
		}
	}
}
