package mesh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestFillRelaysOpenSegment: a node tailing an on-demand fill gets the
// packets of the source's open segment as they are stored, before the
// segment seals (a reader of its copy reads them), then each seal; at the
// end both hold the same signed segments.
func TestFillRelaysOpenSegment(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	key := testKey("open-segment")
	// Less than one segment (1 s, 256 KiB): nothing is sealed yet.
	f := startFollow(t.Context(), t, a, b, key, 400*time.Millisecond)
	_, lastPN, _ := f.wa.Last()
	if n := len(f.wa.Manifest().Segments); n != 0 {
		t.Fatalf("the source sealed %d segments already", n)
	}
	testkit.Eventually(t, 10*time.Second, "the copy to hold the source's open segment", func() bool {
		_, pn, ok := f.wb.Last()
		return ok && pn == lastPN
	})
	if n := len(f.wb.Manifest().Segments); n != 0 {
		t.Fatalf("the copy has %d sealed segments, want 0 before the source seals", n)
	}
	r, err := b.st.NewReader(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.TryNext()
	_ = r.Close()
	if err != nil || p.PN != 0 {
		t.Fatalf("a reader of the copy: packet %d, %v; want packet 0", p.PN, err)
	}

	record(t, f.wa, f.src, 3*time.Second)
	if err := f.wa.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	if err := f.result(t, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := f.wb.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	sameSegments(t, a.st, b.st, key)
}

// TestHostileRelayForgesOpenSegment: a trusted relay serves an on-demand
// recording's open segment packet by packet with a forged packet and the
// honest signer's checkpoint, with no checkpoint (and then nothing, the
// stream left open), or with a stranger's checkpoint. The victim stores
// no packet the relay forged (its players read only from the store), fails
// the fill with a provenance error well before its stall timeout, and
// skips the relay. A relay that signs its own forgery is a trusted signer
// lying: the segment's seal, which still must match, ends that fill with
// ErrRelayedSeal.
func TestHostileRelayForgesOpenSegment(t *testing.T) {
	t.Parallel()
	key := testKey("relayed-forged")
	honest := startNode(t, Config{}, nil)
	evil := startNode(t, Config{}, nil)
	stranger := startNode(t, Config{}, nil)
	makeRecording(t, honest.st, key, 3*time.Second)
	mf, err := honest.st.Manifest(key)
	if err != nil {
		t.Fatal(err)
	}
	mf.State = store.StateFilling
	digest := HeaderDigest(&mf)
	data, si, err := honest.st.SegmentSealed(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	// forge changes one payload byte of packet i of a copy of the segment's
	// packets; it returns the copy and the forged payload.
	forge := func(i int) ([]store.Packet, []byte) {
		packets, err := store.DecodeSegment(data)
		if err != nil {
			t.Fatal(err)
		}
		packets[i].RTP = bytes.Clone(packets[i].RTP)
		packets[i].RTP[len(packets[i].RTP)-1] ^= 0xff
		return packets, packets[i].RTP
	}
	honestPackets, err := store.DecodeSegment(data)
	if err != nil {
		t.Fatal(err)
	}
	seal := appendSealFrame(nil, 0, si.Hash, &si.Seal)
	cases := []struct {
		name string
		want error
		// frames writes the open segment (with packet i forged) and the
		// checkpoints and seal the relay sends; then it returns or waits
		// for ctx.
		frames func(ctx context.Context, bw *bufio.Writer, packets []store.Packet)
	}{
		{"forged packet, honest checkpoint after", ErrBadSeal, func(_ context.Context, bw *bufio.Writer, packets []store.Packet) {
			writePackets(bw, packets)
			_, _ = bw.Write(appendCheckpoint(nil, honest.signer, digest, checkpointOf(honestPackets)))
			_, _ = bw.Write(seal)
		}},
		{"forged packet, honest checkpoint first", ErrBadSeal, func(_ context.Context, bw *bufio.Writer, packets []store.Packet) {
			_, _ = bw.Write(appendCheckpoint(nil, honest.signer, digest, checkpointOf(honestPackets)))
			writePackets(bw, packets)
			_, _ = bw.Write(seal)
		}},
		{"no checkpoint, then silence", ErrBadSeal, func(ctx context.Context, bw *bufio.Writer, packets []store.Packet) {
			writePackets(bw, packets)
			_ = bw.Flush()
			<-ctx.Done() // the victim must not wait for its stall timeout
		}},
		{"checkpoint by a stranger", ErrUntrusted, func(_ context.Context, bw *bufio.Writer, packets []store.Packet) {
			writePackets(bw, packets)
			_, _ = bw.Write(appendCheckpoint(nil, stranger.signer, digest, checkpointOf(packets)))
			_, _ = bw.Write(seal)
		}},
		{"relay signs its forgery", ErrRelayedSeal, func(_ context.Context, bw *bufio.Writer, packets []store.Packet) {
			writePackets(bw, packets)
			_, _ = bw.Write(appendCheckpoint(nil, evil.signer, digest, checkpointOf(packets)))
			_, _ = bw.Write(seal)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			victim := startNode(t, Config{TrustedSigners: []string{honest.ID(), evil.ID()}}, nil)
			packets, forged := forge(len(honestPackets) / 2)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			evil.host.SetStreamHandler(FillProtocol, serveLies(mf, func(bw *bufio.Writer) {
				tc.frames(ctx, bw, slices.Clone(packets))
			}))
			if err := connect(t.Context(), victim, evil); err != nil {
				t.Fatal(err)
			}
			pf, err := victim.OpenFill(t.Context(), providerOf(evil), key, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Close()
			if !pf.open {
				t.Fatal("the victim did not ask the trusted relay for the open segment: the test proves nothing")
			}
			w, err := victim.st.Create(pf.Manifest())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = pf.Run(t.Context(), w)
			took := time.Since(start)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Run: %v, want %v", err, tc.want)
			}
			if took > CheckpointWait+5*time.Second {
				t.Fatalf("the fill took %v to give up", took)
			}
			if tc.want != ErrRelayedSeal {
				for _, p := range w.Relayed() {
					if bytes.Equal(p.RTP, forged) {
						t.Fatalf("the victim stored the forged packet %d", p.PN)
					}
				}
			}
			_ = w.Finish(store.StatePartial)
			if m, _ := victim.st.Manifest(key); len(m.Segments) != 0 || m.Packets != 0 {
				t.Fatalf("victim stored %d segments, %d packets", len(m.Segments), m.Packets)
			}
			if !victim.liars.skip(evil.host.ID(), key) {
				t.Error("the relay is not skipped afterwards")
			}
		})
	}
}

// TestOpenCheckpointsPassedOn: an on-demand recording still filling on A
// is relayed packet by packet to B and from B to C: every open-segment
// packet C stores is named by a checkpoint A signed, which B passed on
// unchanged; at the end all three hold the same signed segments.
func TestOpenCheckpointsPassedOn(t *testing.T) {
	t.Parallel()
	a, b := startPair(t, Config{})
	c := startNode(t, Config{}, nil)
	if err := connect(t.Context(), c, b); err != nil {
		t.Fatal(err)
	}
	key := testKey("open-hops")
	f := startFollow(t.Context(), t, a, b, key, 400*time.Millisecond)
	_, lastPN, _ := f.wa.Last()
	testkit.Eventually(t, 10*time.Second, "B to hold A's open segment", func() bool {
		_, pn, ok := f.wb.Last()
		return ok && pn == lastPN
	})
	pfc, wc := openRelay(t, b, c, key)
	done := make(chan error, 1)
	go func() { done <- pfc.Run(t.Context(), wc) }()
	testkit.Eventually(t, 10*time.Second, "C to hold A's open segment", func() bool {
		_, pn, ok := wc.Last()
		return ok && pn == lastPN
	})
	named, signers := checkpointSigners(c, key)
	if named <= int(lastPN) || len(signers) != 1 || signers[a.ID()] == 0 {
		t.Fatalf("C holds checkpoints naming %d packets (want %d), by %v; want all by A (%s)", named, lastPN+1, signers, a.ID())
	}

	record(t, f.wa, f.src, 3*time.Second)
	if err := f.wa.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	if err := f.result(t, 10*time.Second); err != nil {
		t.Fatalf("B's Run: %v", err)
	}
	if err := f.wb.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("C's Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("C's Run did not return")
	}
	if err := wc.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	sameSegments(t, a.st, c.st, key)
}

// TestFillOpenSegmentNotFromUntrusted: a peer that is not a trusted signer
// is not asked for an open segment: a fill from it gets sealed segments
// only, so its first packet waits for the first seal.
func TestFillOpenSegmentNotFromUntrusted(t *testing.T) {
	t.Parallel()
	a, c := startNode(t, Config{}, nil), startNode(t, Config{}, nil)
	b := startNode(t, Config{TrustedSigners: []string{c.ID()}}, nil)
	if err := connect(t.Context(), b, a); err != nil {
		t.Fatal(err)
	}
	key := testKey("open-untrusted")
	w, err := a.st.Create(testManifest(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Finish(store.StatePartial) })
	record(t, w, &packetSource{size: 1200, rate: 250_000}, 400*time.Millisecond)
	pf, err := b.OpenFill(t.Context(), providerOf(a), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if pf.open {
		t.Fatal("asked an untrusted signer for its open segment")
	}
}
