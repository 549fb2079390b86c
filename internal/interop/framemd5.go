package interop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Kind is a stream's media type as framemd5 names it.
type Kind string

// The kinds a play keeps frames of.
const (
	Video Kind = "video"
	Audio Kind = "audio"
)

// Frame is one decoded frame.
type Frame struct {
	PTS  time.Duration // presentation time, from the stream's time base
	Dur  time.Duration // duration
	Size int           // bytes of raw frame
	MD5  string        // of the raw frame
	At   time.Time     // when its line reached the test
}

// Frames are a play's decoded frames by kind, in decoding order.
type Frames map[Kind][]Frame

// MD5s returns the MD5 column of the frames of kind k.
func (f Frames) MD5s(k Kind) []string {
	out := make([]string, len(f[k]))
	for i, fr := range f[k] {
		out[i] = fr.MD5
	}
	return out
}

// ParseFrameMD5 reads framemd5 output (ffmpeg -f framemd5, or gst-play.py) as
// it is written and returns the frames of every video and audio stream; now
// stamps each frame's arrival. Streams of other kinds are ignored. A data
// line before its stream's #media_type and #tb, or a malformed line, is an
// error.
func ParseFrameMD5(r io.Reader, now func() time.Time) (Frames, error) {
	kinds := map[int]Kind{}
	bases := map[int][2]int64{} // time base num/den
	frames := Frames{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if err := parseHeader(line, kinds, bases); err != nil {
				return frames, fmt.Errorf("framemd5 line %d %q: %w", n, line, err)
			}
			continue
		}
		idx, fr, err := parseFrame(line, bases)
		if err != nil {
			return frames, fmt.Errorf("framemd5 line %d %q: %w", n, line, err)
		}
		fr.At = now()
		switch k := kinds[idx]; k {
		case Video, Audio:
			frames[k] = append(frames[k], fr)
		case "":
			return frames, fmt.Errorf("framemd5 line %d %q: stream %d has no #media_type line", n, line, idx)
		}
	}
	return frames, sc.Err()
}

// parseHeader reads "#tb N: a/b" and "#media_type N: kind"; other comment
// lines (#format, #codec_id, #dimensions, the column names) carry nothing
// the kit uses.
func parseHeader(line string, kinds map[int]Kind, bases map[int][2]int64) error {
	name, rest, ok := strings.Cut(strings.TrimPrefix(line, "#"), " ")
	if !ok || (name != "tb" && name != "media_type") {
		return nil
	}
	idxs, val, ok := strings.Cut(rest, ":")
	if !ok {
		return fmt.Errorf("no ':'")
	}
	idx, err := strconv.Atoi(strings.TrimSpace(idxs))
	if err != nil {
		return fmt.Errorf("stream index: %w", err)
	}
	val = strings.TrimSpace(val)
	if name == "media_type" {
		kinds[idx] = Kind(val)
		return nil
	}
	nums, dens, ok := strings.Cut(val, "/")
	num, err1 := strconv.ParseInt(nums, 10, 64)
	den, err2 := strconv.ParseInt(dens, 10, 64)
	if !ok || err1 != nil || err2 != nil || num <= 0 || den <= 0 {
		return fmt.Errorf("time base %q", val)
	}
	bases[idx] = [2]int64{num, den}
	return nil
}

// parseFrame reads "stream, dts, pts, duration, size, md5".
func parseFrame(line string, bases map[int][2]int64) (int, Frame, error) {
	f := strings.Split(line, ",")
	if len(f) != 6 {
		return 0, Frame{}, fmt.Errorf("%d fields, want 6", len(f))
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	idx, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, Frame{}, fmt.Errorf("stream index: %w", err)
	}
	tb, ok := bases[idx]
	if !ok {
		return 0, Frame{}, fmt.Errorf("stream %d has no #tb line", idx)
	}
	pts, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return 0, Frame{}, fmt.Errorf("pts: %w", err)
	}
	dur, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return 0, Frame{}, fmt.Errorf("duration: %w", err)
	}
	size, err := strconv.Atoi(f[4])
	if err != nil {
		return 0, Frame{}, fmt.Errorf("size: %w", err)
	}
	if len(f[5]) != 32 {
		return 0, Frame{}, fmt.Errorf("md5 %q is not 32 hex digits", f[5])
	}
	in := func(v int64) time.Duration {
		return time.Duration(float64(v) * float64(tb[0]) / float64(tb[1]) * float64(time.Second))
	}
	return idx, Frame{PTS: in(pts), Dur: in(dur), Size: size, MD5: f[5]}, nil
}

// VideoMD5s plays args with ffmpeg (input options and -i URL or file) and
// returns the MD5 of every decoded frame of its first video stream, in
// decoding order, independent of the timestamps a transport may shift; and
// how long ffmpeg ran. Every frame is kept (-fps_mode passthrough). It may
// run on any goroutine; ctx bounds ffmpeg.
func VideoMD5s(ctx context.Context, args ...string) ([]string, time.Duration, error) {
	full := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)
	full = append(full, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "framemd5", "-")
	cmd := exec.CommandContext(ctx, "ffmpeg", full...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("ffmpeg %v: %w\n%s", args, err, stderr.String())
	}
	took := time.Since(start)
	frames, err := ParseFrameMD5(&out, time.Now)
	if err != nil {
		return nil, 0, fmt.Errorf("ffmpeg %v: %w", args, err)
	}
	return frames.MD5s(Video), took, nil
}
