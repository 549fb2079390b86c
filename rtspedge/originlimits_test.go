package rtspedge

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/fakeorigin"
	"github.com/rtspmesh/rtspmesh/store"
)

// runFake opens url, creates a recording and runs the session into it; it
// returns the recording's manifest after Finish(partial) and Run's error.
func runFake(t *testing.T, url string, req OriginRequest) (store.Manifest, error) {
	t.Helper()
	st := newStore(t)
	req.URL, req.Timeout = url, 5*time.Second
	o, err := OpenOrigin(t.Context(), req)
	if err != nil {
		t.Fatalf("OpenOrigin: %v", err)
	}
	m := o.Manifest()
	m.Key = "k"
	w, err := st.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	runErr := o.Run(ctx, w)
	if err := w.Finish(store.StatePartial); err != nil {
		t.Fatal(err)
	}
	m, err = st.Manifest("k")
	if err != nil {
		t.Fatal(err)
	}
	return m, runErr
}

// TestOriginFloodBounded: an origin that sends ten times what its SDP's
// 2 s allow at the maximum bitrate is cut at the budget.
func TestOriginFloodBounded(t *testing.T) {
	t.Parallel()
	const rate = 4_000_000                                                                                     // bit/s
	budget := int64(rate / 8 * (2.5 + 2))                                                                      // (duration + duration/4 + 2 s) at rate
	o := fakeorigin.StartT(t, fakeorigin.Config{Duration: 2 * time.Second, Packets: 20_000, PacketSize: 1200}) // 24 MB
	m, err := runFake(t, o.URL("flood.ts"), OriginRequest{MaxBitrate: rate})
	if !errors.Is(err, ErrStreamLimit) {
		t.Fatalf("Run: %v, want ErrStreamLimit", err)
	}
	if int64(m.Bytes) > budget || m.Bytes < uint64(budget)/2 {
		t.Fatalf("stored %d bytes, want about the budget %d", m.Bytes, budget)
	}
	t.Logf("origin sent %d bytes (at least), stored %d (budget %d): %v", o.SentBytes(), m.Bytes, budget, err)
}

// TestOriginHugePackets: an RTP packet larger than a player can receive
// ends the fill, and is not stored.
func TestOriginHugePackets(t *testing.T) {
	t.Parallel()
	o := fakeorigin.StartT(t, fakeorigin.Config{Packets: 10, PacketSize: 65000})
	m, err := runFake(t, o.URL("huge.ts"), OriginRequest{})
	if !errors.Is(err, ErrStreamLimit) {
		t.Fatalf("Run: %v, want ErrStreamLimit", err)
	}
	if m.Packets != 0 {
		t.Fatalf("stored %d packets of 65000 bytes", m.Packets)
	}
	t.Logf("%v", err)
}

// TestOriginLargestPlayablePacket: a packet of exactly MaxPlayerPacket
// bytes is stored.
func TestOriginLargestPlayablePacket(t *testing.T) {
	t.Parallel()
	o := fakeorigin.StartT(t, fakeorigin.Config{Packets: 10, PacketSize: MaxPlayerPacket})
	m, err := runFake(t, o.URL("max.ts"), OriginRequest{})
	if err != nil || m.Packets != 10 {
		t.Fatalf("Run: %v, %d packets stored, want nil and 10", err, m.Packets)
	}
}
