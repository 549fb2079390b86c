package interop

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Player is a program that plays RTSP.
type Player string

// The players the kit drives.
const (
	// FFmpeg decodes with ffmpeg -f framemd5.
	FFmpeg Player = "ffmpeg"
	// GStreamer decodes with rtspsrc ! decodebin ! appsink (testdata/gst-play.py).
	GStreamer Player = "gstreamer"
)

// Players are both players, for tables.
var Players = []Player{FFmpeg, GStreamer}

// Options say how to play.
type Options struct {
	// Transport is "tcp" (the default) or "udp".
	Transport string
	// Seek, when positive, plays from there: ffmpeg asks for it in its
	// first PLAY (-ss, with -noaccurate_seek so that every decoded frame is
	// kept); GStreamer seeks once the first frame is decoded (PAUSE, then
	// PLAY with the Range) and keeps only the frames after the seek.
	Seek time.Duration
	// For, when positive, stops the player after about this much (a live
	// stream); otherwise the player must end by itself.
	For time.Duration
	// Timeout kills the player. Default For + 30 s, or 60 s without For.
	Timeout time.Duration
	// Unqueued starts the player at once. By default a player waits until
	// fewer than MaxPlayers run in the test binary, so that a machine with
	// few cores paces every stream (a player that waits is not timed);
	// players that must overlap one that already runs (a live join) skip
	// the queue.
	Unqueued bool
}

// MaxPlayers is how many queued players run at once in a test binary.
const MaxPlayers = 6

var playerSlots = make(chan struct{}, MaxPlayers)

// Play is the outcome of one player's run.
type Play struct {
	Player  Player
	URL     string
	Options Options
	Frames  Frames
	Started time.Time // the player was started
	Exited  time.Time // the player had exited
	// Err is set when the player failed, was killed at the timeout, or
	// wrote something the kit could not read.
	Err    error
	Stderr string // the player's diagnostics, for failure messages
}

// Running is a player that has been started.
type Running struct {
	play    *Play
	decoded chan struct{} // closed at the first decoded frame
	done    chan struct{} // closed when play is final
}

// Run plays url with p until it ends and returns the outcome.
func Run(t testing.TB, p Player, url string, o Options) *Play {
	t.Helper()
	return Start(t, p, url, o).Wait()
}

// Start starts p playing url. The player is killed when the test ends, at
// the latest.
func Start(t testing.TB, p Player, url string, o Options) *Running {
	t.Helper()
	if o.Transport == "" {
		o.Transport = "tcp"
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
		if o.For > 0 {
			o.Timeout = o.For + 30*time.Second
		}
	}
	name, args := command(p, url, o)
	release := func() {}
	if !o.Unqueued {
		select {
		case playerSlots <- struct{}{}:
			release = func() { <-playerSlots }
		case <-t.Context().Done():
			t.Fatalf("%s: the test ended while the player waited for a slot", p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		release()
		t.Fatalf("%s: %v", p, err)
	}
	r := &Running{
		play:    &Play{Player: p, URL: url, Options: o, Started: time.Now()},
		decoded: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := cmd.Start(); err != nil {
		cancel()
		release()
		t.Fatalf("start %s: %v", p, err)
	}
	go func() {
		defer close(r.done)
		defer release()
		defer cancel()
		var once sync.Once
		frames, perr := ParseFrameMD5(stdout, func() time.Time {
			once.Do(func() { close(r.decoded) })
			return time.Now()
		})
		werr := cmd.Wait()
		pl := r.play
		pl.Exited, pl.Frames, pl.Stderr = time.Now(), frames, strings.TrimSpace(stderr.String())
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			pl.Err = fmt.Errorf("%s did not end within %s (killed)", p, o.Timeout)
		case werr != nil:
			pl.Err = fmt.Errorf("%s: %w", p, werr)
		case perr != nil:
			pl.Err = fmt.Errorf("%s output: %w", p, perr)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// Decoded is closed when the player has decoded its first frame.
func (r *Running) Decoded() <-chan struct{} { return r.decoded }

// Done is closed when the player has exited.
func (r *Running) Done() <-chan struct{} { return r.done }

// Wait waits for the player to exit and returns the outcome.
func (r *Running) Wait() *Play {
	<-r.done
	return r.play
}

// command is the command line of player p.
func command(p Player, url string, o Options) (string, []string) {
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	switch p {
	case FFmpeg:
		args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-rtsp_transport", o.Transport}
		if o.Seek > 0 {
			args = append(args, "-ss", secs(o.Seek), "-noaccurate_seek")
		}
		args = append(args, "-i", url)
		if o.For > 0 {
			args = append(args, "-t", secs(o.For))
		}
		// passthrough: every decoded frame once, whatever its timestamp
		// (the default would drop or repeat frames when the timestamps
		// move, as they do when the first RTCP sender report arrives).
		args = append(args, "-map", "0:v?", "-map", "0:a?", "-fps_mode", "passthrough",
			"-flush_packets", "1", "-f", "framemd5", "-")
		return "ffmpeg", args
	case GStreamer:
		args := []string{Testdata("gst-play.py"), "--protocols", o.Transport}
		if o.Seek > 0 {
			args = append(args, "--seek", secs(o.Seek))
		}
		if o.For > 0 {
			args = append(args, "--duration", secs(o.For))
		}
		return "/usr/bin/python3", append(args, url)
	}
	panic(fmt.Sprintf("interop: unknown player %q", p))
}

// Testdata is the path of a file in the repository's testdata directory.
func Testdata(name string) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("interop: no caller information to find testdata")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", name)
}

// Check returns the play's error, or an error if it decoded no frame.
func (p *Play) Check() error {
	if p.Err != nil {
		return fmt.Errorf("%s: %w\n%s", p, p.Err, p.Stderr)
	}
	if len(p.Frames[Video])+len(p.Frames[Audio]) == 0 {
		return fmt.Errorf("%s: decoded no frame\n%s", p, p.Stderr)
	}
	return nil
}

// String names the play: player, transport, URL.
func (p *Play) String() string {
	s := fmt.Sprintf("%s/%s %s", p.Player, p.Options.Transport, p.URL)
	if p.Options.Seek > 0 {
		s += fmt.Sprintf(" from %s", p.Options.Seek)
	}
	return s
}

// paced is the kind pacing and media time are measured on: video, or audio
// for an audio-only play.
func (p *Play) paced() []Frame {
	if len(p.Frames[Video]) >= 2 {
		return p.Frames[Video]
	}
	return p.Frames[Audio]
}

// MediaTime is the media the play decoded: the sum of the durations of its
// video frames, or audio frames for an audio-only play. Durations, not
// timestamps: ffmpeg moves its timestamps when the first RTCP sender
// report arrives.
func (p *Play) MediaTime() time.Duration {
	var d time.Duration
	for _, f := range p.paced() {
		d += f.Dur
	}
	return d
}

// startup is the media a player may decode at once when it starts, before
// it plays at the pace of the stream: ffmpeg reads about a second ahead to
// probe the streams. Pacing is measured after it.
const startup = 1500 * time.Millisecond

// endFlush is the media at the end of a play that a player may decode at
// once when it learns that the stream ended (a BYE, the end of its range,
// its -t): its decoder holds a few frames back (frame threads, B-frame
// reordering) and lets them out at the end, when the end comes, not when
// they arrived. Pacing is measured before it.
const endFlush = 500 * time.Millisecond

// minPaced is the least media Pacing measures over.
const minPaced = time.Second

// Pacing is how long the play took per second of media while it played at
// the pace of the stream: the slope of the wall time at which each frame was
// decoded over its position in the media (least squares), for the frames
// after the first startup of media and before the last endFlush. It is 1
// for a stream delivered in real time, less for one delivered faster. The
// window leaves out the player's start-up and end, which are the player's,
// not the delivery's; the slope weighs every frame of the window alike, so
// one frame held back by a loaded machine does not make or break it. It is
// an error when the window holds less than minPaced of media.
func (p *Play) Pacing() (float64, error) {
	f := p.paced()
	var total time.Duration
	for _, fr := range f {
		total += fr.Dur
	}
	var pos time.Duration // media before frame i
	var xs, ys []float64
	for _, fr := range f {
		if pos >= startup && pos+fr.Dur <= total-endFlush {
			xs = append(xs, pos.Seconds())
			ys = append(ys, fr.At.Sub(f[0].At).Seconds())
		}
		pos += fr.Dur
	}
	if len(xs) < 2 || xs[len(xs)-1]-xs[0] < minPaced.Seconds() {
		return 0, fmt.Errorf("too little media to pace: %s decoded, want more than %s", total, startup+minPaced+endFlush)
	}
	return slope(xs, ys), nil
}

// slope is the least-squares slope of ys over xs (xs not all equal).
func slope(xs, ys []float64) float64 {
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(ys))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	return sxy / sxx
}

// EndLag is how long the player ran after its last decoded frame (of any
// kind) before it exited: the time it took to notice that the stream ended.
func (p *Play) EndLag() time.Duration {
	var last time.Time
	for _, fs := range p.Frames {
		if len(fs) > 0 && fs[len(fs)-1].At.After(last) {
			last = fs[len(fs)-1].At
		}
	}
	if last.IsZero() {
		return p.Exited.Sub(p.Started)
	}
	return p.Exited.Sub(last)
}

// Summary is the figures of a play for a test log: frames, pacing, end lag.
func (p *Play) Summary() string {
	pacing, err := p.Pacing()
	ps := fmt.Sprintf("%.3f", pacing)
	if err != nil {
		ps = "n/a"
	}
	return fmt.Sprintf("%d video + %d audio frames, %.2f s of media, pacing %s, end lag %.2f s",
		len(p.Frames[Video]), len(p.Frames[Audio]), p.MediaTime().Seconds(), ps, p.EndLag().Seconds())
}
