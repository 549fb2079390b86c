package node_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// sampleFPS is the sample clip's frame rate (origin.SampleClip: 25 fps, 20 s,
// 500 distinct frames, so frame hashes repeat only when the live loop wraps).
const sampleFPS = 25

// TestLiveFFmpegJoinsAtKeyFrame: ffmpeg joins a live stream through a node and
// its first decoded frame is a key frame; a second ffmpeg joins 3 s after the
// first has decoded a frame; both decode cleanly (no decoder complaints, no
// RTP gaps), the second's frames are the first's over their overlap, and the
// origin serves one session.
func TestLiveFFmpegJoinsAtKeyFrame(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	n := startNode(t, nodeConfig(t, org))

	p1 := startLivePlayer(t, n.url("o/live"), 12*time.Second) // long enough to cover all of player 2
	select {
	case <-p1.decoded:
	case <-p1.done:
		t.Fatalf("player 1 ended before decoding a frame: %v\n%s", p1.err, p1.stderrTail())
	case <-time.After(30 * time.Second):
		t.Fatal("player 1 decoded nothing within 30 s")
	}
	// The players are 3 s apart on purpose: the second joins a window that
	// has moved on, at a later key frame.
	apart := time.NewTimer(3 * time.Second)
	<-apart.C
	p2 := startLivePlayer(t, n.url("o/live"), 6*time.Second)
	p1.wait(t)
	p2.wait(t)

	for i, p := range []*livePlayer{p1, p2} {
		p.checkClean(t, fmt.Sprintf("player %d", i+1))
	}
	overlap := alignedOverlap(t, "player 2 against player 1", p1.md5s, p2.md5s)
	if want := 3 * sampleFPS; overlap < want {
		t.Fatalf("players 1 and 2 share %d frames, want at least %d (3 s)", overlap, want)
	}
	if _, plays := org.Sessions("live"); plays != 1 {
		t.Fatalf("origin sessions for the live stream: %d, want 1", plays)
	}
	t.Logf("player 1: %d frames, player 2: %d frames, %d in common", len(p1.md5s), len(p2.md5s), overlap)
}

// TestLiveRelayDecodesSameFrames: A pulls a live stream from the origin and
// B relays it from A; ffmpeg on A and ffmpeg on B, running at once, decode
// identical frames over the span they share (aligned by content, since
// they join at different key frames and the relay lags), at least 3 s of it.
func TestLiveRelayDecodesSameFrames(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) {
		c.Live = map[string][]byte{"live": origin.SampleClip()}
	})
	first := meshNode(t, org, nil)
	nodes := fillerFirst(t, org, "o/live", first, meshNode(t, org, nil, first))
	a, b := nodes[0], nodes[1] // A is the stream's designated filler: it pulls from the origin
	key, err := node.CanonicalKey("rtsp://" + org.Addr() + "/live")
	if err != nil {
		t.Fatal(err)
	}
	// A pulls first (its upstream lingers after this player), so that B
	// finds A as a provider instead of going to the origin itself.
	pullLive(t, a, "A", "o/live", key, 10*time.Second)

	const run = 10 * time.Second // under the clip's 20 s loop: no frame repeats in one player
	onA := startLivePlayer(t, a.url("o/live"), run)
	onB := startLivePlayer(t, b.url("o/live"), run)
	onA.wait(t)
	onB.wait(t)
	onA.checkClean(t, "player on A")
	onB.checkClean(t, "player on B")

	if in, err := a.Stream("o/live"); err != nil || in.Source != "origin" {
		t.Fatalf("A's live recording: %+v (%v), want one from the origin", in, err)
	}
	if in, err := b.Stream("o/live"); err != nil || in.Source != a.PeerID() {
		t.Fatalf("B's live recording: %+v (%v), want one relayed from A %s", in, err, a.PeerID())
	}
	overlap := alignedOverlap(t, "B against A", onA.md5s, onB.md5s)
	if want := 3 * sampleFPS; overlap < want {
		t.Fatalf("A and B share %d frames, want at least %d (3 s)", overlap, want)
	}
	if _, plays := org.Sessions("live"); plays != 1 {
		t.Fatalf("origin sessions for the live stream: %d, want 1 for the mesh", plays)
	}
	t.Logf("A: %d frames, B: %d frames, %d identical frames in common (%.1f s)",
		len(onA.md5s), len(onB.md5s), overlap, float64(overlap)/sampleFPS)
}

// alignedOverlap is interop.AlignFrames that fails the test on an error.
func alignedOverlap(t *testing.T, what string, a, b []string) int {
	t.Helper()
	n, err := interop.AlignFrames(a, b)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return n
}

// livePlayer is one ffmpeg decoding a live stream's video for a while, with
// the framemd5 of every decoded frame and showinfo's key-frame flags.
type livePlayer struct {
	url     string
	decoded chan struct{} // closed when the first frame is decoded
	done    chan struct{} // closed when ffmpeg has exited; the fields below are then set

	md5s     []string // framemd5 hashes, in decoding order
	keys     []bool   // showinfo's iskey, per decoded frame
	problems []string // stderr lines that report a decoding or transport problem
	tail     []string // the last stderr lines, for failure messages
	err      error
}

// decodeProblems are what ffmpeg says when the stream it is given does not
// decode cleanly (missing parameter sets, a start inside a GOP, damaged or
// lost packets), and any other error line: a clean run has none.
var decodeProblems = []string{
	"error while decoding", "non-existing PPS", "non-existing SPS", "concealing", "corrupt",
	"no frame!", "decode_slice_header error", "missing picture", "Invalid NAL",
	"RTP: missed", "RTP: dropping", "max delay reached", "error", "Error",
}

var showinfoFrame = regexp.MustCompile(`\] n: *(\d+) .* iskey:(\d)`)

// startLivePlayer runs ffmpeg on url over TCP for about d of video; the
// player stops with the test at the latest.
func startLivePlayer(t *testing.T, url string, d time.Duration) *livePlayer {
	t.Helper()
	p := &livePlayer{url: url, decoded: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
		"-rtsp_transport", "tcp", "-i", url,
		"-map", "0:v:0", "-t", strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		"-vf", "showinfo", "-fps_mode", "passthrough", "-f", "framemd5", "-")
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start ffmpeg: %v", err)
	}
	var once sync.Once
	go func() {
		defer close(p.done)
		defer cancel()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := showinfoFrame.FindStringSubmatch(line); m != nil {
				p.keys = append(p.keys, m[2] == "1")
				once.Do(func() { close(p.decoded) })
				continue
			}
			if strings.Contains(line, "Parsed_showinfo") {
				continue // side data and configuration of showinfo
			}
			for _, s := range decodeProblems {
				if strings.Contains(line, s) {
					p.problems = append(p.problems, line)
					break
				}
			}
			p.tail = append(p.tail, line)
			if len(p.tail) > 30 {
				p.tail = p.tail[1:]
			}
		}
		p.err = cmd.Wait()
		frames, perr := interop.ParseFrameMD5(&out, time.Now)
		p.md5s = frames.MD5s(interop.Video)
		if p.err == nil {
			p.err = perr
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// wait waits for ffmpeg to exit and fails the test if it failed.
func (p *livePlayer) wait(t *testing.T) {
	t.Helper()
	<-p.done
	if p.err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", p.url, p.err, p.stderrTail())
	}
}

func (p *livePlayer) stderrTail() string {
	select {
	case <-p.done:
		return strings.Join(p.tail, "\n")
	default:
		return "(running)"
	}
}

// checkClean fails the test unless the player decoded at least 2 s of video,
// starting with a key frame, and ffmpeg reported no problem.
func (p *livePlayer) checkClean(t *testing.T, who string) {
	t.Helper()
	if len(p.problems) > 0 {
		t.Errorf("%s: ffmpeg reported %d problems, first %q", who, len(p.problems), p.problems[0])
	}
	if len(p.keys) == 0 || !p.keys[0] {
		t.Errorf("%s: first decoded frame is not a key frame (key flags of the first frames: %v)", who, p.keys[:min(len(p.keys), 5)])
	}
	if len(p.md5s) < 2*sampleFPS {
		t.Errorf("%s: %d frames decoded, want at least 2 s of video", who, len(p.md5s))
	}
}
