package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// playResult is what one play of a URL measured.
type playResult struct {
	firstPacket time.Duration // PLAY sent → first RTP packet
	packets     int
	duration    time.Duration // first → last packet
}

// playIdle ends a play: a stream that sent nothing for this long has ended.
const playIdle = 2 * time.Second

// playOnce plays url over transport ("tcp" or "udp") to its end, or for at
// most limit when limit is not 0 (a live stream has no end), with an RTSP
// client and measures it. Over UDP the client's ports are on loopback.
func playOnce(ctx context.Context, url, transport string, limit time.Duration) (playResult, error) {
	u, err := base.ParseURL(url)
	if err != nil {
		return playResult{}, err
	}
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: ptr(gortsplib.TransportTCP)}
	if transport == "udp" {
		c.Transport = ptr(gortsplib.TransportUDP)
		c.ListenPacket = func(network, addr string) (net.PacketConn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return net.ListenPacket(network, net.JoinHostPort("127.0.0.1", port))
		}
	}
	if err := c.Start2(); err != nil {
		return playResult{}, err
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		return playResult{}, fmt.Errorf("describe: %w", err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return playResult{}, fmt.Errorf("setup: %w", err)
	}

	var (
		mu          sync.Mutex
		res         playResult
		first, last time.Time
		arrived     = make(chan struct{}, 1)
	)
	c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, _ *rtp.Packet) {
		now := time.Now()
		mu.Lock()
		if res.packets == 0 {
			first = now
		}
		res.packets++
		last = now
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	start := time.Now()
	if _, err := c.Play(nil); err != nil {
		return playResult{}, fmt.Errorf("play: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	idle := time.NewTimer(10 * time.Second) // the first packet may take a fill to arrive
	defer idle.Stop()
	var enough <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		enough = t.C
	}
loop:
	for {
		select {
		case <-arrived:
			idle.Reset(playIdle)
		case <-idle.C:
			break loop
		case <-enough:
			break loop
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				mu.Lock()
				n := res.packets
				mu.Unlock()
				if n == 0 {
					return playResult{}, err
				}
			}
			break loop
		case <-ctx.Done():
			return playResult{}, ctx.Err()
		}
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if res.packets == 0 {
		return res, errors.New("no packets")
	}
	res.firstPacket = first.Sub(start)
	res.duration = last.Sub(first)
	return res, nil
}

func ptr[T any](v T) *T { return &v }
