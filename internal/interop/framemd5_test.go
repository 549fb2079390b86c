package interop

import (
	"strings"
	"testing"
	"time"
)

// TestParseFrameMD5 reads ffmpeg's framemd5 with a video and an audio
// stream, and refuses what it cannot place.
func TestParseFrameMD5(t *testing.T) {
	t.Parallel()
	const out = `#format: frame checksums
#version: 2
#hash: MD5
#tb 0: 1/25
#media_type 0: video
#codec_id 0: rawvideo
#dimensions 0: 320x240
#sar 0: 1/1
#tb 1: 1/48000
#media_type 1: audio
#codec_id 1: pcm_s16le
#sample_rate 1: 48000
#channel_layout_name 1: mono
#stream#, dts,        pts, duration,     size, hash
0,          0,          0,        1,   115200, 0c273e5ab83ae98503cea6c80971eafc
1,          0,          0,     1024,     2048, 96b2a511556fd76ea2b9a05a4a8f986f
0,          1,          1,        1,   115200, cb52453a3e5baf2ebbe716a038b2b20f
`
	now := time.Unix(100, 0)
	f, err := ParseFrameMD5(strings.NewReader(out), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	v, a := f[Video], f[Audio]
	if len(v) != 2 || len(a) != 1 {
		t.Fatalf("%d video and %d audio frames, want 2 and 1", len(v), len(a))
	}
	if v[1].PTS != 40*time.Millisecond || v[1].Dur != 40*time.Millisecond || v[1].Size != 115200 || v[1].MD5 != "cb52453a3e5baf2ebbe716a038b2b20f" || !v[1].At.Equal(now) {
		t.Errorf("video frame 1: %+v", v[1])
	}
	if a[0].Dur != 1024*time.Second/48000 {
		t.Errorf("audio frame 0 lasts %s, want 1024 samples at 48 kHz", a[0].Dur)
	}
	for name, bad := range map[string]string{
		"no media type": "#tb 0: 1/25\n0, 0, 0, 1, 10, 0c273e5ab83ae98503cea6c80971eafc\n",
		"no time base":  "#media_type 0: video\n0, 0, 0, 1, 10, 0c273e5ab83ae98503cea6c80971eafc\n",
		"short line":    "#tb 0: 1/25\n#media_type 0: video\n0, 0, 0, 1, 10\n",
		"bad md5":       "#tb 0: 1/25\n#media_type 0: video\n0, 0, 0, 1, 10, xyz\n",
		"bad time base": "#tb 0: 1/0\n",
		"bad pts":       "#tb 0: 1/25\n#media_type 0: video\n0, 0, x, 1, 10, 0c273e5ab83ae98503cea6c80971eafc\n",
	} {
		if _, err := ParseFrameMD5(strings.NewReader(bad), time.Now); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestSameFrames: identical plays pass; a dropped, changed or extra frame
// of either kind fails and says where; an empty reference fails.
func TestSameFrames(t *testing.T) {
	t.Parallel()
	frames := func(video, audio string) Frames {
		f := Frames{}
		for _, c := range video {
			f[Video] = append(f[Video], Frame{MD5: string(c)})
		}
		for _, c := range audio {
			f[Audio] = append(f[Audio], Frame{MD5: string(c)})
		}
		return f
	}
	want := frames("abcd", "wxyz")
	if err := SameFrames(frames("abcd", "wxyz"), want); err != nil {
		t.Errorf("identical: %v", err)
	}
	for name, got := range map[string]Frames{
		"video frame dropped": frames("abd", "wxyz"),
		"audio frame changed": frames("abcd", "wXyz"),
		"extra audio frame":   frames("abcd", "wxyzz"),
		"no audio":            frames("abcd", ""),
	} {
		if err := SameFrames(got, want); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := SameFrames(want, Frames{}); err == nil {
		t.Error("an empty reference: no error")
	}
}
