package origin

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fileMD5s decodes the sample directly: the reference for every play.
func fileMD5s(t *testing.T, ctx context.Context, extra ...string) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "sample.ts")
	if err := os.WriteFile(f, SampleClip(), 0o644); err != nil {
		t.Fatal(err)
	}
	return videoMD5s(t, ctx, append(extra, "-i", f)...)
}

// freeUDPPair finds an even loopback UDP port whose successor is free too.
func freeUDPPair(t *testing.T) (rtpAddr, rtcpAddr string) {
	t.Helper()
	for range 100 {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port >= 65534 {
			a.Close()
			continue
		}
		b, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if err != nil {
			a.Close()
			continue
		}
		a.Close()
		b.Close()
		return fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)
	}
	t.Fatal("no free even/odd UDP port pair on loopback")
	return "", ""
}

// TestFFmpegPlay plays the sample from the origin with ffmpeg over TCP and
// UDP: the decoded video frames equal decoding the file, and the play takes
// the clip's duration in wall time (paced, not burst).
func TestFFmpegPlay(t *testing.T) {
	t.Parallel()
	clip := testClip(t)
	want := fileMD5s(t, t.Context())
	if len(want) != 500 {
		t.Fatalf("the file decodes to %d frames, want 500", len(want))
	}
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Media: map[string][]byte{"sample.ts": SampleClip()}}
			if transport == "udp" {
				cfg.UDPRTPAddress, cfg.UDPRTCPAddress = freeUDPPair(t)
			}
			o := startOrigin(t, cfg)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			start := time.Now()
			got := videoMD5s(t, ctx, "-rtsp_transport", transport, "-i", "rtsp://"+o.Addr()+"/sample.ts")
			wall := time.Since(start)
			if !slices.Equal(got, want) {
				t.Fatalf("decoded %d frames through the origin, %d from the file; first difference at %d",
					len(got), len(want), firstDiff(got, want))
			}
			lo, hi := clip.Duration*9/10, clip.Duration*11/10
			if wall < lo || wall > hi {
				t.Fatalf("play took %v, want %v..%v (clip %v)", wall, lo, hi, clip.Duration)
			}
			t.Logf("%s: %d frames identical, wall %v for a %v clip", transport, len(got), wall.Round(time.Millisecond), clip.Duration)
			if d, p := o.Sessions("sample.ts"); d != 1 || p != 1 {
				t.Fatalf("Sessions = %d describes, %d plays; want 1, 1", d, p)
			}
		})
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestFFmpegSeek plays from 10 s: the origin starts at the key frame at or
// before 10 s (9.021 s), so ffmpeg decodes the same frames as the file from
// that key frame on.
func TestFFmpegSeek(t *testing.T) {
	t.Parallel()
	clip := testClip(t)
	o := sampleOrigin(t)
	all := fileMD5s(t, t.Context())
	key := clip.Packets[clip.seek(10*time.Second)].TT
	// Frame index of that key frame in the file: the i-th key start is frame 25*i.
	first := 0
	for i, k := range clip.keyStarts {
		if clip.Packets[k].TT == key {
			first = 25 * i
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// No accurate seek and passthrough timing: ffmpeg outputs every frame the
	// origin sends, from the key frame on.
	got := videoMD5s(t, ctx, "-rtsp_transport", "tcp", "-ss", "10", "-noaccurate_seek", "-i", "rtsp://"+o.Addr()+"/sample.ts", "-frames:v", "50")
	if len(got) != 50 {
		t.Fatalf("decoded %d frames after the seek, want 50", len(got))
	}
	if !slices.Equal(got, all[first:first+50]) {
		t.Fatalf("frames after seek differ from the file's frames %d..%d (first difference at %d)", first, first+50, firstDiff(got, all[first:first+50]))
	}
}

// TestFFmpegOtherClips: a main-profile clip with B frames (ft B, RTP
// timestamps from PTS) and a video-only clip play through the origin with
// the same decoded frames as the file.
func TestFFmpegOtherClips(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]string{
		"b-frames":   {"-profile:v", "main", "-bf", "2"},
		"video-only": {"-profile:v", "baseline", "-an"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := shortClip(t, opts...)
			clip, err := Packetize(ts)
			if err != nil {
				t.Fatal(err)
			}
			var fts [4]int
			for _, p := range clip.Packets {
				fts[p.FT]++
			}
			if name == "b-frames" && fts[2] == 0 {
				t.Fatalf("no B frame found (frame types %v)", fts)
			}
			if name == "video-only" && clip.Tracks() != 1 {
				t.Fatalf("%d tracks", clip.Tracks())
			}
			f := filepath.Join(t.TempDir(), "clip.ts")
			if err := os.WriteFile(f, ts, 0o644); err != nil {
				t.Fatal(err)
			}
			want := videoMD5s(t, t.Context(), "-i", f)
			o := startOrigin(t, Config{Media: map[string][]byte{"clip.ts": ts}})
			got := videoMD5s(t, t.Context(), "-rtsp_transport", "tcp", "-i", "rtsp://"+o.Addr()+"/clip.ts")
			if !slices.Equal(got, want) {
				t.Fatalf("%d frames through the origin, %d from the file; first difference at %d", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}
