package origin

import _ "embed"

//go:embed sample/sample.ts
var sampleClip []byte

// SampleClip returns the embedded sample: 20 s of H.264 (constrained
// baseline, 640x360, 25 fps, a key frame every second) and AAC-LC (mono,
// 48 kHz) in MPEG-TS, made by sample/make-sample.sh from ffmpeg's test
// sources. The slice is shared: do not modify it.
func SampleClip() []byte { return sampleClip }

// The paths under which `rtspmesh origin` (with no media of its own) and
// `rtspmesh demo` serve the sample: as a seekable VOD, and looped as a
// live stream.
const (
	SamplePath     = "sample.ts"
	SampleLivePath = "live"
)
