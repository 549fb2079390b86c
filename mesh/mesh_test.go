package mesh

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/store"
)

// testNode is a running Mesh on 127.0.0.1 with an in-memory store.
type testNode struct {
	*Mesh
	st  *store.Store
	dir string
}

// loopback is the listen addresses tests use: TCP and QUIC on free ports.
var loopback = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// startNode starts a Mesh with cfg (DataDir, Listen and Logger filled in when
// empty) over st (a new in-memory store when nil), and stops it at cleanup.
func startNode(t testing.TB, cfg Config, st *store.Store) *testNode {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == nil {
		cfg.Listen = loopback
	}
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger()
	}
	if cfg.AnswerTimeout == 0 {
		// The tests judge what a fill does, not how soon a loaded machine
		// lets a provider answer (loaded clean-clone runs saw honest
		// answers take over the 2 s default in three tests: ci31, ci36,
		// ci39); the answer timeout's own tests set it.
		cfg.AnswerTimeout = 15 * time.Second
	}
	if st == nil {
		st = openStore(t)
	}
	m, err := New(cfg, st)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	testkit.Run(t, "mesh Run", m.Run)
	return &testNode{Mesh: m, st: st, dir: cfg.DataDir}
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true, CacheBytes: -1})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// startMesh starts n nodes; nodes 1.. bootstrap from node 0. It returns once
// every node has a DHT peer.
func startMesh(t testing.TB, n int, cfg Config) []*testNode {
	t.Helper()
	nodes := []*testNode{startNode(t, cfg, nil)}
	boot := nodes[0].Addrs()
	for i := 1; i < n; i++ {
		c := cfg
		c.Bootstrap = boot
		nodes = append(nodes, startNode(t, c, nil))
	}
	// Bootstrapping from node 0 alone fills the routing tables in time, but
	// slowly on a loaded machine: tests connect everyone to everyone as
	// well. Benchmarks do not: they measure lookups through a sparse mesh.
	for i, a := range nodes {
		if _, bench := t.(*testing.B); bench {
			break
		}
		for _, b := range nodes[:i] {
			if err := connect(context.Background(), a, b); err != nil {
				t.Fatalf("connect: %v", err)
			}
		}
	}
	for _, nd := range nodes {
		testkit.Eventually(t, 20*time.Second, "DHT peers", func() bool {
			return nd.dht.RoutingTable().Size() >= min(n-1, 2)
		})
	}
	return nodes
}

// connect dials b from a.
func connect(ctx context.Context, a, b *testNode) error {
	return a.host.Connect(ctx, peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()})
}

// testManifest is a one-video-track manifest for key.
func testManifest(key string) store.Manifest {
	return store.Manifest{
		Key: key,
		SDP: []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"),
		Tracks: []store.Track{
			{Control: "trackID=0", Media: "video", PayloadType: 96, ClockRate: 90000, Codec: "H264"},
		},
		Duration: 0,
	}
}

// packetSource makes a deterministic stream of RTP packets: size bytes each,
// rate bytes per second of media time, a key frame every second.
//
// Once live (goLive), a source never falls behind its own pace: a packet's
// transmit time is at least the wall time since goLive plus the greatest
// lead the source has had (record bursts seconds of media at once), as a
// live origin's packets are. Otherwise a test that waits between appends,
// on a loaded machine, makes a relay judge its source LiveBehindLimit
// behind (ErrBehind) and leave it.
type packetSource struct {
	size, rate int
	n          int
	buf        []byte

	live  bool
	start time.Time     // when the source went live
	lead  time.Duration // the greatest tt - (now - start) so far (live)
	last  time.Duration // the last packet's tt (live)
}

// step is the media time of one packet.
func (ps *packetSource) step() time.Duration {
	return time.Duration(int64(ps.size) * int64(time.Second) / int64(ps.rate))
}

// goLive makes the packets from now on a live source's (the type's doc).
func (ps *packetSource) goLive() {
	ps.live, ps.start = true, time.Now()
	ps.last = time.Duration(ps.n-1) * ps.step()
	ps.lead = ps.last
}

// paced is the transmit time of a live source's next packet: a step after
// the one before it, and no earlier than the wall time since goLive plus
// the source's greatest lead.
func (ps *packetSource) paced() time.Duration {
	now := time.Since(ps.start)
	tt := max(ps.last+ps.step(), now+ps.lead)
	ps.lead = max(ps.lead, tt-now)
	ps.last = tt
	return tt
}

// unread takes back the packet next returned last: the next call returns
// it again (a live source's at its time then).
func (ps *packetSource) unread(p store.Packet) {
	ps.n--
	if ps.live {
		ps.last = p.TT - ps.step()
	}
}

func (ps *packetSource) next() store.Packet {
	if ps.buf == nil {
		ps.buf = make([]byte, ps.size)
	}
	i := ps.n
	ps.n++
	tt := time.Duration(int64(i) * int64(ps.size) * int64(time.Second) / int64(ps.rate))
	if ps.live {
		tt = ps.paced()
	}
	b := ps.buf
	b[0], b[1] = 0x80, 96
	binary.BigEndian.PutUint16(b[2:], uint16(i))
	binary.BigEndian.PutUint32(b[4:], uint32(tt*90000/time.Second))
	binary.BigEndian.PutUint32(b[8:], 0x12345678)
	for j := 12; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	p := store.Packet{TT: tt, PN: uint64(i), RTP: b, FT: store.FrameP}
	perSec := max(ps.rate/ps.size, 1)
	if i%perSec == 0 {
		p.FT, p.Flags = store.FrameKey, store.FlagKeyStart
	}
	return p
}

// record appends packets of ps to w until it spans d of media time.
func record(t testing.TB, w *store.Writer, ps *packetSource, d time.Duration) {
	t.Helper()
	for {
		p := ps.next()
		if p.TT >= d {
			ps.unread(p)
			return
		}
		if err := w.Append(p); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
}

// makeRecording stores a complete recording of key spanning d.
func makeRecording(t testing.TB, st *store.Store, key string, d time.Duration) store.Manifest {
	t.Helper()
	w, err := st.Create(testManifest(key))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	record(t, w, &packetSource{size: 1200, rate: 250_000}, d)
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	m, err := st.Manifest(key)
	if err != nil {
		t.Fatalf("Manifest: %v", err)
	}
	return m
}

// sameSegments fails t unless both stores hold key with identical segments.
func sameSegments(t testing.TB, a, b *store.Store, key string) {
	t.Helper()
	ma, err := a.Manifest(key)
	if err != nil {
		t.Fatalf("source manifest: %v", err)
	}
	mb, err := b.Manifest(key)
	if err != nil {
		t.Fatalf("copy manifest: %v", err)
	}
	if len(ma.Segments) != len(mb.Segments) || len(ma.Segments) == 0 {
		t.Fatalf("segments: source %d, copy %d", len(ma.Segments), len(mb.Segments))
	}
	if ma.Packets != mb.Packets || ma.Bytes != mb.Bytes {
		t.Errorf("counts: source %d packets %d bytes, copy %d packets %d bytes", ma.Packets, ma.Bytes, mb.Packets, mb.Bytes)
	}
	for i, sa := range ma.Segments {
		if sa != mb.Segments[i] {
			t.Fatalf("segment %d: source %+v, copy %+v", i, sa, mb.Segments[i])
		}
		da, ha, err := a.Segment(key, sa.Index)
		if err != nil {
			t.Fatalf("source segment %d: %v", sa.Index, err)
		}
		db, hb, err := b.Segment(key, sa.Index)
		if err != nil {
			t.Fatalf("copy segment %d: %v", sa.Index, err)
		}
		if ha != hb || string(da) != string(db) {
			t.Fatalf("segment %d differs", sa.Index)
		}
	}
}

var keySeq struct {
	sync.Mutex
	n int
}

// testKey returns a stream key unique in the test binary.
func testKey(name string) string {
	keySeq.Lock()
	defer keySeq.Unlock()
	keySeq.n++
	return fmt.Sprintf("rtsp://origin.test:554/%s/%d.mp4", name, keySeq.n)
}
