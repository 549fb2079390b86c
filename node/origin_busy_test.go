package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/rtspmesh/rtspmesh/internal/interop"
	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
)

// TestOriginAtSessionLimit: the origin takes one session per stream
// (a camera) and another client holds it. A player's miss on the node is
// refused by the origin (453), and the node tries again with backoff:
// when the holder leaves during the retries, the player gets the stream
// from the origin's second session; when it never leaves, the player gets
// an error after the last retry, about a second and a half, not a wait
// without end.
func TestOriginAtSessionLimit(t *testing.T) {
	t.Parallel()
	for _, leaves := range []bool{true, false} {
		name := "holder leaves"
		if !leaves {
			name = "holder stays"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			org := startOrigin(t, func(c *origin.Config) { c.MaxSessions = 1 })
			cfg := nodeConfig(t, org)
			cfg.Mesh.Enabled = false
			n := startNode(t, cfg)

			holder, _ := holdSession(t, "rtsp://"+org.Addr()+"/sample.ts")
			start := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			played := playInBackground(ctx, n.url("o/sample.ts"))
			testkit.Eventually(t, 10*time.Second, "the origin to refuse the node's session", func() bool {
				refused, _ := org.Refused("sample.ts")
				return refused >= 1
			})
			if leaves {
				holder.Close()
			}
			err := <-played
			took := time.Since(start)
			refused, _ := org.Refused("sample.ts")
			_, plays := org.Sessions("sample.ts")
			t.Logf("%s: player's first packet after %v (err %v); the origin refused %d sessions and played %d",
				name, took.Round(time.Millisecond), err, refused, plays)
			if leaves {
				if err != nil {
					t.Fatalf("the player got no stream once the holder left: %v", err)
				}
				if plays != 2 {
					t.Fatalf("origin sessions played: %d, want 2 (the holder's, the node's)", plays)
				}
				return
			}
			if err == nil {
				t.Fatal("the player got a stream from an origin that refused every session")
			}
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				t.Fatalf("the player waited 20 s for an origin at its limit: %v", err)
			}
			if refused != 4 {
				t.Fatalf("the origin refused %d sessions, want 4 (the node's first try and its 3 retries)", refused)
			}
		})
	}
}

// TestOriginAtSessionLimitGst: gst-rtsp-server whose session pool holds one
// session, held by another client, answers the node's SETUP 503 Service
// Unavailable; the node tries again, and once the holder has left its
// player gets the stream.
func TestOriginAtSessionLimitGst(t *testing.T) {
	t.Parallel()
	gst := interop.StartGstServerMax(t, 1, interop.Mount{Path: "live", Pipeline: interop.LivePipeline, Live: true})
	cfg := nodeConfig(t, nil)
	cfg.Mesh.Enabled = false
	cfg.Origins = []node.Origin{gstOrigin(gst)}
	n, logs := startNodeLogging(t, cfg)

	holder, holderSetups := holdSession(t, gst.URL("live"))
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	played := playInBackground(ctx, n.url("gst/live"))
	// gst-rtsp-server does not signal a SETUP its pool refuses: the node's
	// log says it was refused.
	testkit.Eventually(t, 10*time.Second, "gst-rtsp-server to refuse the node's session", func() bool {
		return strings.Contains(logs.String(), "origin at its session limit")
	})
	holder.Close()
	if err := <-played; err != nil {
		t.Fatalf("the player got no stream once the holder left: %v\n%s", err, logs.String())
	}
	t.Logf("player's first packet after %v, %d refusals logged; gst-rtsp-server set up %d sessions' tracks (the holder's %d)",
		time.Since(start).Round(time.Millisecond), strings.Count(logs.String(), "origin at its session limit"),
		gst.Requests("SETUP", "live"), holderSetups)
}

// holdSession plays url with a client that holds its session until the
// test ends or it is closed; tracks is how many it set up.
func holdSession(t *testing.T, url string) (holder *gortsplib.Client, tracks int) {
	t.Helper()
	holder, desc, err := interop.SetUp(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(holder.Close)
	if _, err := holder.Play(nil); err != nil {
		t.Fatal(err)
	}
	return holder, len(desc.Medias)
}

// playInBackground plays url until its first packet, on another goroutine;
// the channel has the result.
func playInBackground(ctx context.Context, url string) <-chan error {
	played := make(chan error, 1)
	go func() { played <- firstPacket(ctx, url) }()
	return played
}
