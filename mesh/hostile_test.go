package mesh

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/rtspmesh/rtspmesh/store"
)

// A hostile peer: a node of the mesh, built from this package and the store,
// whose fill handler lies. The victim trusts only the honest node's
// signatures (TrustedSigners); the hostile peer may connect (an open
// loopback mesh) and serve. Each case: the victim's fill fails with a
// provenance error before it stores a byte that is not the honest node's,
// and the peer is skipped afterwards.

// hostileSetup starts an honest node (it pulled key from "the origin": its
// own signed recording), a victim that trusts only it, and a hostile node.
func hostileSetup(t *testing.T, key string) (honest, victim, evil *testNode) {
	t.Helper()
	honest = startNode(t, Config{}, nil)
	evil = startNode(t, Config{}, nil)
	victim = startNode(t, Config{TrustedSigners: []string{honest.ID()}}, nil)
	makeRecording(t, honest.st, key, 8*time.Second)
	return honest, victim, evil
}

// serveLies answers every fill request with manifest mf and frames made by
// frames (the hostile peer's lie).
func serveLies(mf store.Manifest, frames func(bw *bufio.Writer)) network.StreamHandler {
	return func(s network.Stream) {
		defer s.Close()
		if _, err := readRequest(s); err != nil {
			_ = s.Reset()
			return
		}
		// The answer goes at once; what frames writes goes out in one
		// write at the end unless it flushes: the lies are judged, not how
		// soon a loaded machine lets the liar write its checkpoint after
		// the packets it names (once more than CheckpointWait after
		// packets flushed on their own).
		bw := bufio.NewWriterSize(s, 1<<20)
		head, _ := appendOK(nil, mf)
		_, _ = bw.Write(head)
		_ = bw.Flush()
		frames(bw)
		_ = bw.Flush()
	}
}

// copyFrames writes key's segments of st, passing each through edit (which
// may change index, bytes, hash or seal, or drop it with ok false), then
// end frame end.
func copyFrames(st *store.Store, key string, edit func(i uint32, data []byte, si *store.SegmentInfo) bool, end func(m store.Manifest) frame) func(*bufio.Writer) {
	return func(bw *bufio.Writer) {
		m, err := st.Manifest(key)
		if err != nil {
			return // the test is over
		}
		for i := uint32(0); i < m.NextSegment(); i++ {
			data, si, err := st.SegmentSealed(key, i)
			if err != nil {
				return
			}
			if edit != nil && !edit(i, data, &si) {
				continue
			}
			_, _ = bw.Write(appendSegmentHeader(nil, si.Index, si.Hash, &si.Seal, len(data)))
			_, _ = bw.Write(data)
		}
		_, _ = bw.Write(appendEnd(nil, end(m)))
	}
}

// victimFill fills key from evil into a new recording on the victim and
// returns Run's error and what the victim stored.
func victimFill(t *testing.T, victim, evil *testNode, key string) (store.Manifest, error) {
	t.Helper()
	pf, err := victim.OpenFill(t.Context(), providerOf(evil), key, 0)
	if err != nil {
		return store.Manifest{}, err
	}
	defer pf.Close()
	w, err := victim.st.Create(pf.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	err = pf.Run(t.Context(), w)
	_ = w.Finish(store.StatePartial)
	m, _ := victim.st.Manifest(key)
	return m, err
}

func sha256Of(b []byte) store.Hash { return sha256.Sum256(b) }

// onlyHonest fails t unless every segment victim holds of key is the
// honest node's, byte for byte.
func onlyHonest(t *testing.T, honest, victim *testNode, key string, m store.Manifest) {
	t.Helper()
	for _, si := range m.Segments {
		got, _, err := victim.st.Segment(key, si.Index)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := honest.st.Segment(key, si.Index)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("victim stored segment %d that is not the honest node's", si.Index)
		}
	}
}

func TestHostileForgedRecording(t *testing.T) {
	t.Parallel()
	key := testKey("forged")
	_, victim, evil := hostileSetup(t, key)
	// The hostile peer records its own content under the key: its store
	// signs it with its own key, which the victim does not trust.
	makeRecording(t, evil.st, key, 3*time.Second)
	m, err := victimFill(t, victim, evil, key)
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("fill of a forged recording: %v, want ErrUntrusted", err)
	}
	if len(m.Segments) != 0 {
		t.Fatalf("victim stored %d forged segments", len(m.Segments))
	}
	if !victim.liars.skip(evil.host.ID(), key) {
		t.Error("the forger is not skipped afterwards")
	}
}

func TestHostileReplaysSignatureForAnotherKey(t *testing.T) {
	t.Parallel()
	key, other := testKey("rekey-real"), testKey("rekey-asked")
	honest, victim, evil := hostileSetup(t, key)
	// Valid signatures of the honest node, for key, served as other.
	mf, _ := honest.st.Manifest(key)
	mf.Key = other
	evil.host.SetStreamHandler(FillProtocol, serveLies(mf, copyFrames(honest.st, key, nil, endOf)))
	m, err := victimFill(t, victim, evil, other)
	if !errors.Is(err, ErrBadSeal) {
		t.Fatalf("fill of a re-keyed recording: %v, want ErrBadSeal", err)
	}
	if len(m.Segments) != 0 {
		t.Fatalf("victim stored %d re-keyed segments", len(m.Segments))
	}
}

func TestHostileAltersOneSegment(t *testing.T) {
	t.Parallel()
	key := testKey("altered")
	honest, victim, evil := hostileSetup(t, key)
	mf, _ := honest.st.Manifest(key)
	const bad = 3
	alter := func(i uint32, data []byte, si *store.SegmentInfo) bool {
		if i == bad {
			data[len(data)-1] ^= 0x55
			si.Hash = sha256Of(data) // a consistent hash: only the seal can tell
		}
		return true
	}
	evil.host.SetStreamHandler(FillProtocol, serveLies(mf, copyFrames(honest.st, key, alter, endOf)))
	m, err := victimFill(t, victim, evil, key)
	if !errors.Is(err, ErrBadSeal) {
		t.Fatalf("fill with an altered segment: %v, want ErrBadSeal", err)
	}
	if len(m.Segments) != bad {
		t.Fatalf("victim stored %d segments, want the %d before the altered one", len(m.Segments), bad)
	}
	onlyHonest(t, honest, victim, key, m)

	// The next source (the honest node) resumes from the last verified
	// segment and the copy is whole.
	w, err := victim.st.Resume(key)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := victim.OpenFill(t.Context(), providerOf(honest), key, bad)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if err := pf.Run(t.Context(), w); err != nil {
		t.Fatalf("resume from the honest node: %v", err)
	}
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	sameSegments(t, honest.st, victim.st, key)
	if got, _ := victim.st.Manifest(key); len(got.EndSeal) != endSealLen {
		t.Errorf("the copy kept no end seal (%d bytes)", len(got.EndSeal))
	}
}

func TestHostileTruncatesRecording(t *testing.T) {
	t.Parallel()
	key := testKey("truncated")
	honest, victim, evil := hostileSetup(t, key)
	mf, _ := honest.st.Manifest(key)
	const keep = 4
	cut := func(i uint32, _ []byte, _ *store.SegmentInfo) bool { return i < keep }
	end := func(m store.Manifest) frame {
		f := endOf(m)
		f.Index = keep // "complete after 4 segments", with the real end seal
		return f
	}
	evil.host.SetStreamHandler(FillProtocol, serveLies(mf, copyFrames(honest.st, key, cut, end)))
	m, err := victimFill(t, victim, evil, key)
	if !errors.Is(err, ErrBadSeal) {
		t.Fatalf("fill of a truncated recording passed as complete: %v, want ErrBadSeal", err)
	}
	if m.State == store.StateComplete || len(m.EndSeal) != 0 {
		t.Fatalf("victim took the truncated recording as complete: %s", m.State)
	}
	onlyHonest(t, honest, victim, key, m)
}

func TestHostileReordersSegments(t *testing.T) {
	t.Parallel()
	key := testKey("reordered")
	honest, victim, evil := hostileSetup(t, key)
	mf, _ := honest.st.Manifest(key)
	// Segment 3 is left out and 4 sent in its place under index 3.
	evil.host.SetStreamHandler(FillProtocol, serveLies(mf, copyFrames(honest.st, key, leaveOut(3), endOf)))
	m, err := victimFill(t, victim, evil, key)
	if !errors.Is(err, ErrBadSeal) {
		t.Fatalf("fill with a segment left out: %v, want ErrBadSeal", err)
	}
	if len(m.Segments) != 3 {
		t.Fatalf("victim stored %d segments, want 3", len(m.Segments))
	}
	onlyHonest(t, honest, victim, key, m)
}

// leaveOut is a copyFrames edit that leaves segment n out and sends the
// ones after it one index earlier, as if n had never been.
func leaveOut(n uint32) func(i uint32, _ []byte, si *store.SegmentInfo) bool {
	return func(i uint32, _ []byte, si *store.SegmentInfo) bool {
		if i > n {
			si.Index--
		}
		return i != n
	}
}

func TestHostileLiveChain(t *testing.T) {
	t.Parallel()
	key := testKey("live-chain")
	honest := startNode(t, Config{}, nil)
	evil := startNode(t, Config{}, nil)
	wa := liveRecording(t, honest, key, &packetSource{size: 1200, rate: 250_000}, 3*time.Second)
	mf := wa.Manifest()
	if len(mf.Segments) < 4 {
		t.Fatalf("live recording has %d segments", len(mf.Segments))
	}

	// A relay trusted as such that breaks the chain (segment 2 left out,
	// the rest renumbered) is caught by the seals.
	victim := startNode(t, Config{TrustedSigners: []string{honest.ID(), evil.ID()}}, nil)
	mf.Segments = nil
	end := func(m store.Manifest) frame { return frame{Type: frameEnd, State: store.StatePartial} }
	evil.host.SetStreamHandler(FillProtocol, serveLies(mf, copyFrames(honest.st, key, leaveOut(2), end)))
	m, err := victimFill(t, victim, evil, key)
	if !errors.Is(err, ErrBadSeal) {
		t.Fatalf("live fill with a broken chain: %v, want ErrBadSeal", err)
	}
	if len(m.Segments) != 2 {
		t.Fatalf("victim stored %d live segments, want 2", len(m.Segments))
	}
	onlyHonest(t, honest, victim, key, m)
}

func TestHostileSilentProviderCostsAnswerTimeout(t *testing.T) {
	t.Parallel()
	key := testKey("silent")
	victim := startNode(t, Config{AnswerTimeout: 500 * time.Millisecond}, nil)
	silent := startNode(t, Config{}, nil)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	silent.host.SetStreamHandler(FillProtocol, func(s network.Stream) {
		<-release
		_ = s.Reset()
	})
	start := time.Now()
	_, err := victim.OpenFill(t.Context(), providerOf(silent), key, 0)
	took := time.Since(start)
	if err == nil {
		t.Fatal("a silent provider answered")
	}
	// 500ms plus connection set-up on a loaded machine; the old bound was
	// the 15s stall timeout.
	if took > 3*time.Second {
		t.Fatalf("a silent provider cost %v, want about the 500ms answer timeout", took)
	}
}

func TestFillRejectsUnsignedSegment(t *testing.T) {
	t.Parallel()
	key := testKey("unsigned")
	a, b := startPair(t, Config{})
	// A recording stored without a sealer (a node of an older version).
	st := openStore(t)
	makeRecording(t, st, key, 2*time.Second)
	mf, _ := st.Manifest(key)
	a.host.SetStreamHandler(FillProtocol, serveLies(mf, copyFrames(st, key, nil, endOf)))
	if m, err := victimFill(t, b, a, key); !errors.Is(err, ErrUnsigned) || len(m.Segments) != 0 {
		t.Fatalf("fill of unsigned segments: %v, %d stored; want ErrUnsigned, none", err, len(m.Segments))
	}
	if b.liars.skip(a.host.ID(), key) {
		t.Error("a peer serving unsigned (old) segments is taken for a liar")
	}

	// A node does not offer such a recording at all.
	other := testKey("unsigned-held")
	unsigned := startNode(t, Config{}, openStore(t))
	unsigned.st.SetSealer(nil)
	makeRecording(t, unsigned.st, other, time.Second)
	if _, err := b.OpenFill(t.Context(), providerOf(unsigned), other, 0); !errors.Is(err, ErrNotProvided) {
		t.Fatalf("an unsigned recording was offered: %v", err)
	}
}

// TestTrustedOnlyKeys: recordings of an origin with credentials go to
// trusted signers only, and only they see them in the catalogue.
func TestTrustedOnlyKeys(t *testing.T) {
	t.Parallel()
	secret, open := testKey("secret"), testKey("open")
	friend := startNode(t, Config{}, nil)
	stranger := startNode(t, Config{}, nil)
	holder := startNode(t, Config{
		TrustedSigners: []string{friend.ID()},
		TrustedOnly:    func(key string) bool { return key == secret },
	}, nil)
	makeRecording(t, holder.st, secret, 2*time.Second)
	makeRecording(t, holder.st, open, 2*time.Second)

	if _, err := stranger.OpenFill(t.Context(), providerOf(holder), secret, 0); !errors.Is(err, ErrNotProvided) {
		t.Fatalf("an untrusted peer asked for a credentialed origin's recording: %v, want ErrNotProvided", err)
	}
	for _, c := range []struct {
		who *testNode
		key string
	}{{friend, secret}, {stranger, open}} {
		pf, err := c.who.OpenFill(t.Context(), providerOf(holder), c.key, 0)
		if err != nil {
			t.Fatalf("fill of %s: %v", c.key, err)
		}
		pf.Close()
	}
	listed := func(n *testNode) []string {
		cat, err := n.Catalogue(t.Context(), holder.ID())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range cat.Entries {
			keys = append(keys, e.Key)
		}
		return keys
	}
	if got := listed(stranger); len(got) != 1 || got[0] != open {
		t.Errorf("a stranger's catalogue lists %v, want only %s", got, open)
	}
	if got := listed(friend); len(got) != 2 {
		t.Errorf("a trusted signer's catalogue lists %v, want both", got)
	}
}

// TestHostileLiveRelayForgesPackets: a relay (trusted as a relay, as a
// private mesh's members are) that serves a live stream's open segment
// with a forged packet, with no checkpoint, with its source's checkpoint
// of another stream, or with a checkpoint signed by a stranger. The
// victim stores no packet (its players read only from the store), fails
// the fill with a provenance error, and skips the relay.
func TestHostileLiveRelayForgesPackets(t *testing.T) {
	t.Parallel()
	key := testKey("live-forged")
	honest := startNode(t, Config{}, nil)
	evil := startNode(t, Config{}, nil)
	stranger := startNode(t, Config{}, nil)
	wa := liveRecording(t, honest, key, &packetSource{size: 1200, rate: 250_000}, 1500*time.Millisecond)
	mf := wireManifest(wa.Manifest())
	open := mf.NextSegment()
	if len(wa.Manifest().Segments) == 0 || len(openPackets(t, honest.st, key, open)) < 3 {
		t.Fatal("the honest live recording has no sealed segment or no open one: the test proves nothing")
	}
	digest := HeaderDigest(&mf)
	other := mf
	other.Key = testKey("live-other")
	otherDigest := HeaderDigest(&other)

	cases := []struct {
		name string
		want error
		// frames writes the open segment's packets (forged or not) and the
		// checkpoints the relay sends.
		frames func(bw *bufio.Writer, packets []store.Packet)
	}{
		{"forged packet, honest checkpoint", ErrBadSeal, func(bw *bufio.Writer, packets []store.Packet) {
			cp := appendCheckpoint(nil, honest.signer, digest, checkpointOf(packets))
			packets[1].RTP = bytes.Clone(packets[1].RTP)
			packets[1].RTP[len(packets[1].RTP)-1] ^= 0x5a
			writePackets(bw, packets)
			_, _ = bw.Write(cp)
		}},
		{"forged packet, checkpoint first", ErrBadSeal, func(bw *bufio.Writer, packets []store.Packet) {
			_, _ = bw.Write(appendCheckpoint(nil, honest.signer, digest, checkpointOf(packets)))
			packets[0].RTP = bytes.Clone(packets[0].RTP)
			packets[0].RTP[12] ^= 0x5a
			writePackets(bw, packets)
		}},
		{"no checkpoint", ErrBadSeal, func(bw *bufio.Writer, packets []store.Packet) {
			writePackets(bw, packets)
			tick := time.NewTicker(200 * time.Millisecond) // a relay's keepalive pace
			defer tick.Stop()
			for range 2 * CheckpointWait / (200 * time.Millisecond) {
				<-tick.C
				_ = bw.WriteByte(frameKeepalive)
				_ = bw.Flush()
			}
		}},
		{"checkpoint of another stream", ErrBadSeal, func(bw *bufio.Writer, packets []store.Packet) {
			writePackets(bw, packets)
			_, _ = bw.Write(appendCheckpoint(nil, honest.signer, otherDigest, checkpointOf(packets)))
		}},
		{"checkpoint by a stranger", ErrUntrusted, func(bw *bufio.Writer, packets []store.Packet) {
			writePackets(bw, packets)
			_, _ = bw.Write(appendCheckpoint(nil, stranger.signer, digest, checkpointOf(packets)))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			victim := startNode(t, Config{TrustedSigners: []string{honest.ID(), evil.ID()}}, nil)
			evil.host.SetStreamHandler(FillProtocol, serveLies(mf, func(bw *bufio.Writer) {
				tc.frames(bw, openPackets(t, honest.st, key, open))
				_, _ = bw.Write(appendEnd(nil, frame{Type: frameEnd, State: store.StatePartial}))
			}))
			pf, err := victim.OpenFill(t.Context(), providerOf(evil), key, FromLiveEdge)
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Close()
			w, err := victim.st.Create(pf.Manifest())
			if err != nil {
				t.Fatal(err)
			}
			err = pf.Run(t.Context(), w)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Run: %v, want %v", err, tc.want)
			}
			if _, pn, ok := w.Last(); ok {
				t.Fatalf("the victim stored live packets up to %d from a lying relay", pn)
			}
			_ = w.Finish(store.StatePartial)
			if !victim.liars.skip(evil.host.ID(), key) {
				t.Fatal("the lying relay is not skipped")
			}
		})
	}
}

// openPackets is what st holds of key from segment index on.
func openPackets(t *testing.T, st *store.Store, key string, index uint32) []store.Packet {
	t.Helper()
	r, err := st.NewReaderAt(key, index)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []store.Packet
	for {
		p, err := r.TryNext()
		if err != nil {
			return out
		}
		p.RTP = bytes.Clone(p.RTP)
		out = append(out, p)
	}
}

// checkpointOf names packets as a checkpoint does.
func checkpointOf(packets []store.Packet) []checkpointEntry {
	var es []checkpointEntry
	for i := range packets {
		es = append(es, checkpointEntry{PN: packets[i].PN, Hash: sha256Of(store.AppendRecord(nil, &packets[i]))})
	}
	return es
}

// writePackets writes packets as packet frames into bw (not flushed).
func writePackets(bw *bufio.Writer, packets []store.Packet) {
	for i := range packets {
		_, _ = bw.Write(appendPacket(nil, &packets[i]))
	}
}
