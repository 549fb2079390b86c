package mesh

import (
	"bufio"
	"errors"
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

// TestHostileRelayedPacketsBreakSeal: a trusted relay sends packets of an
// open segment that are not the ones the signer sealed, then the signer's
// real seal: the fill fails with ErrRelayedSeal, nothing of the segment is
// stored, and the relay is skipped afterwards.
func TestHostileRelayedPacketsBreakSeal(t *testing.T) {
	t.Parallel()
	key := testKey("relayed-forged")
	honest := startNode(t, Config{}, nil)
	evil := startNode(t, Config{}, nil)
	victim := startNode(t, Config{TrustedSigners: []string{honest.ID(), evil.ID()}}, nil)
	makeRecording(t, honest.st, key, 3*time.Second)
	mf, err := honest.st.Manifest(key)
	if err != nil {
		t.Fatal(err)
	}
	mf.State = store.StateFilling
	data, si, err := honest.st.SegmentSealed(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	packets, err := store.DecodeSegment(data)
	if err != nil {
		t.Fatal(err)
	}
	evil.host.SetStreamHandler(FillProtocol, serveLies(mf, func(bw *bufio.Writer) {
		for i := range packets {
			p := packets[i]
			if i == len(packets)/2 {
				p.RTP = append([]byte(nil), p.RTP...)
				p.RTP[len(p.RTP)-1] ^= 0xff // one byte of the payload
			}
			_, _ = bw.Write(appendPacket(nil, &p))
		}
		_, _ = bw.Write(appendSealFrame(nil, 0, si.Hash, &si.Seal))
	}))
	if err := connect(t.Context(), victim, evil); err != nil {
		t.Fatal(err)
	}
	m, err := victimFill(t, victim, evil, key)
	if !errors.Is(err, ErrRelayedSeal) || !errors.Is(err, ErrBadSeal) {
		t.Fatalf("fill from a relay whose packets break the seal: %v, want ErrRelayedSeal", err)
	}
	if len(m.Segments) != 0 || m.Packets != 0 {
		t.Fatalf("victim stored %d segments, %d packets", len(m.Segments), m.Packets)
	}
	if !victim.liars.skip(evil.host.ID(), key) {
		t.Error("the relay is not skipped afterwards")
	}
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
