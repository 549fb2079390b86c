package interop

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Clip is a short clip the kit makes with ffmpeg from its test sources: a
// moving test pattern (320x240, 25 fps, a key frame every second) and pink
// noise (no two audio frames alike, so frames align by content), each
// encoded with fixed, single-threaded encoder settings.
type Clip struct {
	Name  string // file name; its extension is the container
	Video string // "h264", "h265", "mjpeg", or "" for none
	Audio string // "aac", "pcmu", "opus", or "" for none
	// Length is how long the clip lasts; zero is ClipDuration. Clips of
	// another length need a name of their own.
	Length time.Duration
}

// The clips the interop tests use.
var (
	H264AACTS  = Clip{Name: "h264-aac.ts", Video: "h264", Audio: "aac"}
	H264AACMP4 = Clip{Name: "h264-aac.mp4", Video: "h264", Audio: "aac"}
	H265AAC    = Clip{Name: "h265-aac.mp4", Video: "h265", Audio: "aac"}
	MJPEGPCMU  = Clip{Name: "mjpeg-pcmu.mov", Video: "mjpeg", Audio: "pcmu"}
	H264Opus   = Clip{Name: "h264-opus.mkv", Video: "h264", Audio: "opus"}
	AACOnly    = Clip{Name: "aac.mp4", Audio: "aac"}
)

// Every clip lasts ClipDuration unless its Length says otherwise, at ClipFPS with a key frame every
// ClipGOP frames.
const (
	ClipDuration = 6 * time.Second
	ClipFPS      = 25
	ClipGOP      = 25
)

var (
	clipMu    sync.Mutex
	clipMain  bool   // Main runs the package's tests
	clipDir   string // made at the first clip, removed by Main
	clipFiles = map[string]func() (string, error){}
)

// Main runs a package's tests (call it from TestMain) with a directory for
// the clips that all its tests share, made at the first clip and removed
// afterwards. A test binary started again as a child process (a node,
// a server) makes none, so one killed leaves none behind.
func Main(m *testing.M) int {
	clipMu.Lock()
	clipMain = true
	clipMu.Unlock()
	defer func() {
		clipMu.Lock()
		defer clipMu.Unlock()
		if clipDir != "" {
			_ = os.RemoveAll(clipDir)
		}
	}()
	return m.Run()
}

// Path makes the clip (once per test binary) and returns its path.
func (c Clip) Path(t testing.TB) string {
	t.Helper()
	clipMu.Lock()
	if !clipMain {
		clipMu.Unlock()
		t.Fatal("interop: the package's TestMain must call interop.Main")
	}
	if clipDir == "" {
		dir, err := os.MkdirTemp("", "rtspmesh-interop-")
		if err != nil {
			clipMu.Unlock()
			t.Fatal("interop: ", err)
		}
		clipDir = dir
	}
	dir := clipDir
	mk, ok := clipFiles[c.Name]
	if !ok {
		mk = sync.OnceValues(func() (string, error) { return c.make(dir) })
		clipFiles[c.Name] = mk
	}
	clipMu.Unlock()
	path, err := mk()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

var encoders = map[string][]string{
	"h264": {"-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		"-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "0"},
	"h265": {"-c:v", "libx265", "-preset", "veryfast", "-pix_fmt", "yuv420p",
		"-x265-params", "keyint=25:min-keyint=25:scenecut=0:bframes=0:pools=none:frame-threads=1:log-level=error"},
	"mjpeg": {"-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj420p"},
	// No perceptual noise substitution: its decoder draws from a random
	// generator that runs on from the first frame, so after a seek every
	// frame would decode differently from the same frame in a full play.
	"aac":  {"-c:a", "aac", "-aac_pns", "0", "-b:a", "64k", "-ac", "1", "-ar", "48000"},
	"pcmu": {"-c:a", "pcm_mulaw", "-ac", "1", "-ar", "8000"},
	"opus": {"-c:a", "libopus", "-b:a", "48k", "-ac", "1", "-ar", "48000"},
}

func (c Clip) make(dir string) (string, error) {
	length := c.Length
	if length == 0 {
		length = ClipDuration
	}
	secs := fmt.Sprint(length.Seconds())
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}
	if c.Video != "" {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=%d:duration=%s", ClipFPS, secs))
	}
	if c.Audio != "" {
		args = append(args, "-f", "lavfi", "-i", "anoisesrc=d="+secs+":c=pink:r=48000:a=0.3:seed=7")
	}
	for _, codec := range []string{c.Video, c.Audio} {
		if codec == "" {
			continue
		}
		enc, ok := encoders[codec]
		if !ok {
			return "", fmt.Errorf("clip %s: no encoder for %q", c.Name, codec)
		}
		args = append(args, enc...)
	}
	path := filepath.Join(dir, c.Name)
	args = append(args, path)
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("make clip %s: ffmpeg %s: %w\n%s", c.Name, strings.Join(args, " "), err, stderr.String())
	}
	return path, nil
}

// payloaders are, per codec, the caps a demuxer's pad has and the parser
// and payloader gst-rtsp-server sends it with, unchanged (pass-through: the
// frames are the file's).
var payloaders = map[string]struct{ caps, pay string }{
	"h264":  {"video/x-h264", "h264parse ! rtph264pay config-interval=-1 pt=96"},
	"h265":  {"video/x-h265", "h265parse ! rtph265pay config-interval=-1 pt=96"},
	"mjpeg": {"image/jpeg", "jpegparse ! rtpjpegpay"},
	"aac":   {"audio/mpeg", "aacparse ! rtpmp4gpay pt=97"},
	"pcmu":  {"audio/x-mulaw", "rtppcmupay"},
	"opus":  {"audio/x-opus", "opusparse ! rtpopuspay pt=97"},
}

var demuxers = map[string]string{".ts": "tsdemux", ".mp4": "qtdemux", ".mov": "qtdemux", ".mkv": "matroskademux"}

// Pipeline is the gst-rtsp-server pipeline that serves the clip at path as
// it is: demux, parse, payload (no decoding).
func (c Clip) Pipeline(path string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "filesrc location=%s ! %s name=d", path, demuxers[filepath.Ext(c.Name)])
	n := 0
	for _, codec := range []string{c.Video, c.Audio} {
		if codec == "" {
			continue
		}
		p := payloaders[codec]
		fmt.Fprintf(&b, " d. ! %s ! queue ! %s name=pay%d", p.caps, p.pay, n)
		n++
	}
	return b.String()
}

// LivePipeline is a live source for gst-rtsp-server: a moving pattern with
// the running time drawn on every frame (no two frames alike) in H.264
// (a key frame every second) and pink noise in AAC.
const LivePipeline = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! timeoverlay ! " +
	"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 threads=1 ! video/x-h264,profile=constrained-baseline ! " +
	"h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 " +
	"audiotestsrc is-live=true wave=pink-noise volume=0.3 ! audio/x-raw,rate=48000,channels=1 ! voaacenc ! aacparse ! rtpmp4gpay name=pay1 pt=97"
