package node_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/mesh"
	"github.com/rtspmesh/rtspmesh/node"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// TestHostileLiveRelayForgesPackets: a member gone bad (a trusted signer)
// relays a live stream from A, which pulls it from the origin: it passes
// on A's answer and A's checkpoints as they are, but changes the last
// payload byte of every packet. The victim reaches only the hostile relay
// (mesh.allow_peers), finds it in the DHT and fills from it; it rejects
// the fill, logs the relay as bad_peer, falls back to the origin, and its
// player plays. No packet the relay forged reaches the player or the
// victim's store.
func TestHostileLiveRelayForgesPackets(t *testing.T) {
	t.Parallel()
	org := startOrigin(t, func(c *origin.Config) { c.Live = map[string][]byte{"live": origin.SampleClip()} })
	a := meshNode(t, org, nil)
	key, err := node.CanonicalKey("rtsp://" + org.Addr() + "/live")
	if err != nil {
		t.Fatal(err)
	}
	// A player on A keeps A's upstream open for the whole test.
	ctx, cancel := context.WithCancel(t.Context())
	var players sync.WaitGroup
	defer players.Wait()
	defer cancel()
	players.Go(func() {
		_ = playUntilPacket(ctx, a.url("o/live"), func(*description.Media, *rtp.Packet) bool { return false })
	})
	testkit.Eventually(t, 20*time.Second, "A holds the live stream", func() bool {
		_, err := a.Store().Manifest(key)
		return err == nil
	})

	ev := startForgingRelay(t, a, key, mesh.FromLiveEdge, 0)
	b, logs := victimOfRelay(t, org, a, ev, key)
	forged, nforged, evilID := &ev.forged, &ev.n, ev.id

	var got, bad atomic.Int64
	pctx, pcancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer pcancel()
	err = playUntilPacket(pctx, b.url("o/live"), func(m *description.Media, p *rtp.Packet) bool {
		if _, ok := forged.Load(sha256.Sum256(p.Payload)); ok {
			bad.Add(1)
		}
		return got.Add(1) >= 200
	})
	if err != nil {
		t.Fatalf("the victim's player: %v (got %d packets)\n%s", err, got.Load(), logs.String())
	}
	if bad.Load() > 0 {
		t.Fatalf("the victim's player got %d packets the relay forged", bad.Load())
	}
	if nforged.Load() == 0 {
		t.Fatalf("the relay forged no packet: the test proves nothing\n%s", logs.String())
	}
	if l := logs.String(); !strings.Contains(l, "bad_peer="+evilID) || !strings.Contains(l, "checkpoint") {
		t.Fatalf("the victim logged no rejected checkpoint naming %s:\n%s", evilID, l)
	}
	if n := forgedStored(t, b.Store(), key, forged); n > 0 {
		t.Fatalf("the victim stored %d packets the relay forged", n)
	}
	t.Logf("the relay forged %d packets; the victim's player got %d packets, none of them", nforged.Load(), got.Load())
}

// forgingRelay is a member gone bad: a raw mesh host that provides a key
// and relays each fill request to A, passing A's answer, segments, seals
// and checkpoints on as they are but changing the last payload byte of
// every packet frame.
type forgingRelay struct {
	addr, id string
	forged   sync.Map // sha256 of the RTP payload of every packet it forged
	n        atomic.Int64
}

// startForgingRelay starts a forgingRelay that asks A for key from segment
// from with request flags flags (mesh/doc.go).
func startForgingRelay(t *testing.T, a *testNode, key string, from uint32, flags byte) *forgingRelay {
	t.Helper()
	aID, err := peer.Decode(a.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	ev := &forgingRelay{}
	ev.addr = rawProviderHost(t, a.MeshAddrs(), key, func(ctx context.Context, h host.Host, s network.Stream) {
		defer s.Reset()
		if _, err := readFillRequest(s); err != nil {
			return
		}
		up, err := h.NewStream(ctx, aID, mesh.FillProtocol)
		if err != nil {
			return
		}
		defer up.Reset()
		stop := context.AfterFunc(ctx, func() { _ = up.Reset(); _ = s.Reset() })
		defer stop()
		req := binary.BigEndian.AppendUint16(nil, uint16(len(key)))
		req = append(binary.BigEndian.AppendUint32(append(req, key...), from), flags)
		if _, err := up.Write(req); err != nil {
			return
		}
		forgeRelay(bufio.NewReader(up), bufio.NewWriter(s), func(p *store.Packet) {
			p.RTP = slices.Clone(p.RTP)
			p.RTP[len(p.RTP)-1] ^= 0x5a
			var pkt rtp.Packet
			if pkt.Unmarshal(p.RTP) == nil {
				ev.forged.Store(sha256.Sum256(pkt.Payload), true)
				ev.n.Add(1)
			}
		})
	})
	ev.id = ev.addr[strings.LastIndex(ev.addr, "/")+1:]
	return ev
}

// victimOfRelay starts a node of org that trusts A and the relay as
// signers but reaches only the relay, and waits until it finds the relay
// providing key in the DHT.
func victimOfRelay(t *testing.T, org *origin.Origin, a *testNode, ev *forgingRelay, key string) (*testNode, *testkit.Buffer) {
	t.Helper()
	cfg := nodeConfig(t, org)
	cfg.Mesh.TrustedSigners = []string{a.PeerID(), ev.id} // a member gone bad: trusted, yet checked
	cfg.Mesh.AllowPeers = []string{ev.id}                 // the victim reaches only the relay
	cfg.Mesh.Bootstrap = []string{ev.addr}
	b, logs := startNodeLogging(t, cfg)
	testkit.Eventually(t, 20*time.Second, "the victim finds the hostile relay in the DHT", func() bool {
		fctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		provs, err := node.MeshOf(b.Node).FindProviders(fctx, key)
		return err == nil && slices.ContainsFunc(provs, func(p mesh.Provider) bool { return p.ID == ev.id })
	})
	return b, logs
}

// readFillRequest reads a fill request (mesh/doc.go): u16 key length, key,
// u32 from, u8 flags; it returns the key.
func readFillRequest(r io.Reader) (string, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	rest := make([]byte, int(binary.BigEndian.Uint16(n[:]))+4+1)
	if _, err := io.ReadFull(r, rest); err != nil {
		return "", err
	}
	return string(rest[:len(rest)-5]), nil
}

// forgeRelay copies a fill's answer and frames (mesh/doc.go) from br to
// bw, passing each packet frame's packet through forge (segment frames go
// as they are); it returns at the end frame or an error.
func forgeRelay(br *bufio.Reader, bw *bufio.Writer, forge func(p *store.Packet)) {
	copyN := func(n int) error {
		_, err := io.CopyN(bw, br, int64(n))
		return err
	}
	st, err := br.ReadByte()
	if err != nil || bw.WriteByte(st) != nil || st != 0 {
		_ = bw.Flush()
		return
	}
	var l [4]byte
	if _, err := io.ReadFull(br, l[:]); err != nil {
		return
	}
	_, _ = bw.Write(l[:])
	if copyN(int(binary.BigEndian.Uint32(l[:]))) != nil {
		return
	}
	for {
		if br.Buffered() == 0 && bw.Flush() != nil {
			return
		}
		typ, err := br.ReadByte()
		if err != nil {
			return
		}
		switch typ {
		case 3: // keepalive
			err = bw.WriteByte(typ)
		case 1: // segment: index, hash, seal, length, bytes
			head := make([]byte, 4+32+129+4)
			if _, err = io.ReadFull(br, head); err == nil {
				_ = bw.WriteByte(typ)
				_, _ = bw.Write(head)
				err = copyN(int(binary.BigEndian.Uint32(head[len(head)-4:])))
			}
		case 6: // seal: index, hash, seal
			_ = bw.WriteByte(typ)
			err = copyN(4 + 32 + 129)
		case 5: // clock
			_ = bw.WriteByte(typ)
			err = copyN(13)
		case 7: // checkpoint: passed on as it is
			head := make([]byte, 99)
			if _, err = io.ReadFull(br, head); err == nil {
				_ = bw.WriteByte(typ)
				_, _ = bw.Write(head)
				err = copyN(int(binary.BigEndian.Uint16(head[97:])) * 40)
			}
		case 4: // packet
			if _, err = io.ReadFull(br, l[:]); err != nil {
				return
			}
			rec := make([]byte, binary.BigEndian.Uint32(l[:]))
			if _, err = io.ReadFull(br, rec); err != nil {
				return
			}
			p, derr := store.DecodeRecord(rec)
			if derr != nil {
				return
			}
			forge(&p)
			rec = store.AppendRecord(nil, &p)
			_ = bw.WriteByte(typ)
			_, err = bw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(rec))))
			if err == nil {
				_, err = bw.Write(rec)
			}
		default: // the end
			_ = bw.WriteByte(typ)
			_, _ = io.Copy(bw, br)
			_ = bw.Flush()
			return
		}
		if err != nil {
			return
		}
	}
}

// forgedStored counts the packets st holds of key whose payload is in
// forged.
func forgedStored(t *testing.T, st *store.Store, key string, forged *sync.Map) int {
	t.Helper()
	m, err := st.Manifest(key)
	if errors.Is(err, store.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	from := uint32(0)
	if len(m.Segments) > 0 {
		from = m.Segments[0].Index
	}
	r, err := st.NewReaderAt(key, from)
	if err != nil {
		return 0 // the window moved on: nothing of it to check
	}
	defer r.Close()
	n := 0
	for {
		p, err := r.TryNext()
		if err != nil {
			return n
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(p.RTP) == nil {
			if _, ok := forged.Load(sha256.Sum256(pkt.Payload)); ok {
				n++
			}
		}
	}
}
