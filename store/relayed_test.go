package store

import (
	"errors"
	"testing"
	"time"
)

// relayedSetup records packets on a source store and returns its segment
// 0 (bytes, info, packets) and an empty copy's writer on another store.
func relayedSetup(t *testing.T) (SegmentInfo, []Packet, *Store, *Writer) {
	t.Helper()
	src := memStore(t, Options{})
	record(t, src, "k", synth(defaultSpec, 3*time.Second), StateComplete)
	data, si, err := src.SegmentSealed("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	packets, err := DecodeSegment(data)
	if err != nil {
		t.Fatal(err)
	}
	dst := memStore(t, Options{})
	w, err := dst.Create(Manifest{Key: "k", Tracks: avTracks(), SDP: []byte("v=0\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	return si, packets, dst, w
}

func appendRelayed(t *testing.T, w *Writer, packets []Packet) {
	t.Helper()
	for _, p := range packets {
		if err := w.AppendRelayed(p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelayedSealedWhenTheSealMatches: relayed packets are readable at
// once, a seal of other bytes is refused with nothing sealed, the signer's
// seal seals them, and a reader reads on across the seal.
func TestRelayedSealedWhenTheSealMatches(t *testing.T) {
	t.Parallel()
	si, packets, dst, w := relayedSetup(t)
	half := len(packets) / 2
	appendRelayed(t, w, packets[:half])
	r, err := dst.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []Packet
	for range half {
		p, err := r.TryNext()
		if err != nil {
			t.Fatalf("relayed packet %d: %v", len(got), err)
		}
		got = append(got, p)
	}
	appendRelayed(t, w, packets[half:])
	if err := w.SealRelayed(0, Hash{1}, si.Seal); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("seal of other bytes: %v, want ErrHashMismatch", err)
	}
	if n := len(w.Manifest().Segments); n != 0 {
		t.Fatalf("%d segments sealed after a mismatch", n)
	}
	if err := w.SealRelayed(0, si.Hash, si.Seal); err != nil {
		t.Fatal(err)
	}
	m := w.Manifest()
	if len(m.Segments) != 1 || m.Segments[0].Hash != si.Hash || m.Segments[0].Seal != si.Seal {
		t.Fatalf("sealed segments %+v, want the source's segment 0", m.Segments)
	}
	for len(got) < len(packets) {
		p, err := r.TryNext()
		if err != nil {
			t.Fatalf("packet %d after the seal: %v", len(got), err)
		}
		got = append(got, p)
	}
	checkPackets(t, got, packets)
}

// TestRelayedKeptPrefixAndDroppedAtFinish: KeepUnsealed keeps a prefix
// (a reader past it reads on at its position in the segment), and Finish
// stores none of the relayed packets whose seal never came.
func TestRelayedKeptPrefixAndDroppedAtFinish(t *testing.T) {
	t.Parallel()
	_, packets, dst, w := relayedSetup(t)
	appendRelayed(t, w, packets[:10])
	r, err := dst.NewReader("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range 10 {
		if p, err := r.TryNext(); err != nil || p.PN != packets[i].PN {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if err := w.KeepUnsealed(4); err != nil {
		t.Fatal(err)
	}
	if got := w.Relayed(); len(got) != 4 {
		t.Fatalf("%d relayed packets kept, want 4", len(got))
	}
	if _, pn, _ := w.Last(); pn != packets[3].PN {
		t.Fatalf("last packet %d, want %d", pn, packets[3].PN)
	}
	// Another source's packets from position 4 on: the reader, at 10,
	// goes on with the one at 10.
	other := make([]Packet, 0, 12)
	for _, p := range packets[4:16] {
		p.RTP = append([]byte(nil), p.RTP...)
		p.RTP[len(p.RTP)-1]++
		other = append(other, p)
	}
	appendRelayed(t, w, other)
	if p, err := r.TryNext(); err != nil || !samePacket(p, other[6]) {
		t.Fatalf("after the cut: packet %d, %v; want the new source's packet at position 10", p.PN, err)
	}
	if err := w.Finish(StatePartial); err != nil {
		t.Fatal(err)
	}
	if m := w.Manifest(); m.Packets != 0 || len(m.Segments) != 0 {
		t.Fatalf("finished with %d packets in %d segments; relayed packets must not be stored", m.Packets, len(m.Segments))
	}
}
