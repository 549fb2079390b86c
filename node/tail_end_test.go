package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// tailPlay is what a player over TCP received from a node until the
// node's BYE on every track: per track (SDP order), the payload of every
// RTP packet and when the last came, when its BYE came, and how many RTP
// packets came after a BYE.
type tailPlay struct {
	payloads [][][]byte
	lastRTP  []time.Time
	bye      []time.Time
	afterBye int
}

// playTail plays url over TCP with a gortsplib client until the BYE on
// every track (within 30 s).
func playTail(url string) (*tailPlay, error) {
	c, desc, err := interop.SetUp(url)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	n := len(desc.Medias)
	p := &tailPlay{payloads: make([][][]byte, n), lastRTP: make([]time.Time, n), bye: make([]time.Time, n)}
	var mu sync.Mutex
	byes := 0
	ended := make(chan struct{})
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		i := slices.Index(desc.Medias, m)
		mu.Lock()
		defer mu.Unlock()
		p.payloads[i] = append(p.payloads[i], slices.Clone(pkt.Payload))
		p.lastRTP[i] = time.Now()
		if byes > 0 {
			p.afterBye++
		}
	})
	c.OnPacketRTCPAny(func(m *description.Media, pkt rtcp.Packet) {
		if _, ok := pkt.(*rtcp.Goodbye); !ok {
			return
		}
		i := slices.Index(desc.Medias, m)
		mu.Lock()
		defer mu.Unlock()
		if !p.bye[i].IsZero() {
			return
		}
		p.bye[i] = time.Now()
		if byes++; byes == n {
			close(ended)
		}
	})
	if _, err := c.Play(nil); err != nil {
		return nil, fmt.Errorf("play %s: %w", url, err)
	}
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s: no BYE on every track within 30 s", url)
	}
	mu.Lock()
	defer mu.Unlock()
	return p, nil
}

// storedPayloads is the payload of every packet of a stored recording,
// per track.
func storedPayloads(ctx context.Context, s *store.Store, key string, tracks int) ([][][]byte, error) {
	r, err := s.NewReader(key, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([][][]byte, tracks)
	for {
		p, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(p.RTP); err != nil {
			return nil, fmt.Errorf("stored packet %d: %w", p.PN, err)
		}
		if int(p.Track) >= tracks {
			return nil, fmt.Errorf("stored packet %d on track %d of %d", p.PN, p.Track, tracks)
		}
		out[p.Track] = append(out[p.Track], slices.Clone(pkt.Payload))
	}
}

// samePayloads is nil when got holds want's payloads, in order, per track.
func samePayloads(got, want [][][]byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d tracks, want %d", len(got), len(want))
	}
	for i := range want {
		n := min(len(got[i]), len(want[i]))
		for j := range n {
			if string(got[i][j]) != string(want[i][j]) {
				return fmt.Errorf("track %d: packet %d of %d differs", i, j, len(want[i]))
			}
		}
		if len(got[i]) != len(want[i]) {
			return fmt.Errorf("track %d: %d packets, want %d (the first %d are the same)", i, len(got[i]), len(want[i]), n)
		}
	}
	return nil
}

// TestMissTailDeliversEveryPacket: a player over TCP whose play is a miss
// at the tail of the fill (the node fills at the origin's pace, real time,
// and replays what arrives) receives every packet of the recording, in
// order, before the node's BYE on every track, when the fill ends: the
// origin's last packets and its BYE, then the fill's Finish. Each play is
// compared with the recording once it is complete; the origins are the
// built-in one (asked for Speed 1) and gst-rtsp-server (sends its BYE with
// its last packets). It logs how long after the last RTP packet the BYE
// came.
func TestMissTailDeliversEveryPacket(t *testing.T) {
	t.Parallel()
	const (
		plays  = 12 // per origin
		atOnce = 3
	)
	clip := interop.Clip{Name: "h264-aac-2s.mp4", Video: "h264", Audio: "aac", Length: 2 * time.Second}
	var mounts []interop.Mount
	for i := range plays {
		mounts = append(mounts, interop.Mount{Path: fmt.Sprintf("tail%d", i), Pipeline: clip.Pipeline(clip.Path(t))})
	}
	gst := interop.StartGstServer(t, mounts...)
	ts := shortClip(t, 2*time.Second)
	org := startOrigin(t, func(c *origin.Config) {
		for i := range plays {
			c.Media[fmt.Sprintf("tail%d.ts", i)] = ts
		}
	})
	n := meshNode(t, org, func(c *node.Config) {
		c.Origins[0].Speed = new(1.0)
		c.Origins = append(c.Origins, gstOrigin(gst))
	})

	var paths []string
	for i := range plays {
		paths = append(paths, fmt.Sprintf("o/tail%d.ts", i), fmt.Sprintf("gst/tail%d", i))
	}
	var mu sync.Mutex
	lags := map[string][]time.Duration{} // origin → last RTP to last BYE
	runGroups(t, atOnce, paths, func(t *testing.T, i int) {
		path := paths[i]
		got, err := playTail(n.url(path))
		if err != nil {
			t.Fatal(err)
		}
		in := waitCompleteAt(t, n, path)
		key, err := node.KeyOf(n.Node, path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := storedPayloads(t.Context(), n.Store(), key, len(got.payloads))
		if err != nil {
			t.Fatal(err)
		}
		if err := samePayloads(got.payloads, want); err != nil {
			t.Errorf("a miss (%d packets stored): %v", in.Packets, err)
		}
		if got.afterBye > 0 {
			t.Errorf("%d RTP packets after a BYE", got.afterBye)
		}
		last, bye := slices.MaxFunc(got.lastRTP, time.Time.Compare), slices.MaxFunc(got.bye, time.Time.Compare)
		mu.Lock()
		defer mu.Unlock()
		o := path[:strings.Index(path, "/")]
		lags[o] = append(lags[o], bye.Sub(last))
	})
	for o, l := range lags {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		t.Logf("origin %s: last RTP packet to the last BYE over %d plays: min %v, median %v, max %v",
			o, len(l), l[0].Round(time.Millisecond), l[len(l)/2].Round(time.Millisecond), l[len(l)-1].Round(time.Millisecond))
	}
}
