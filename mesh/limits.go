package mesh

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// DefaultMaxFills is Config.MaxFills when it is 0: a node's
// fills.max_concurrent default.
const DefaultMaxFills = 64

// MaxMaxFills bounds Config.MaxFills: FillMemory(MaxMaxFills) is 6.8 GiB.
const MaxMaxFills = 4096

// What the fill protocol reserves in libp2p's resource manager, and how
// many fills at once get the deep pipeline.
const (
	// fillReserve is one fill this node runs (fill_client.go, Run): its
	// read buffer and its shallow pipeline of segments, 1600 KiB.
	fillReserve = readBuffer + (pipelineDepth+checkDepth)*segmentBytes
	// deepReserve is what the deep pipeline adds to it, 1280 KiB.
	deepReserve = (deepPipeline + deepCheck - pipelineDepth - checkDepth) * segmentBytes
	// deepFills is how many fills at once get the deep pipeline; the
	// others run the shallow one. The deep pipeline lets one fill's
	// network and checks go on while the store stalls (BenchmarkPeerFill);
	// with several fills at once the others keep the store and the cores
	// busy. 8 fills at once of 19 MB each from one peer, on-disk stores,
	// 2 cores under load 3 from other work, aggregate MB/s (medians of 4
	// rounds, two runs): none deep 226 and 242, the first 4 deep 244 and
	// 243, all 8 deep 244 and 269: no gain measured beyond the noise, so
	// a deep pipeline past the first few would hold memory for nothing.
	deepFills = 4
	// serveReserve is one fill this node serves (fill_server.go): its
	// write buffer.
	serveReserve = writeBuffer
	// serveService names, in the resource manager, the fills this node
	// serves; serviceName the fills it runs.
	serveService = "rtspmesh.fill.serve"
)

// FillMemory is the most the fill protocol reserves at once with one
// peer, for a node whose Config.MaxFills is maxFills (doc.go, "Resource
// limits"): maxFills fills run from that peer (1600 KiB each, 1280 KiB
// more for each of the first 4, the deep pipeline) and twice maxFills
// served to it (64 KiB each). For the default 64: 113 MiB.
func FillMemory(maxFills int) int64 {
	return runMemory(maxFills) + serveMemory(maxFills)
}

// runMemory bounds what this node's own fills reserve, from one peer or
// from all together.
func runMemory(maxFills int) int64 {
	return int64(maxFills)*fillReserve + int64(min(maxFills, deepFills))*deepReserve
}

// serveMemory bounds what the fills one peer asks of this node reserve.
func serveMemory(maxFills int) int64 {
	return int64(fillStreams(maxFills)) * serveReserve
}

// fillStreams is how many fill streams may be open each way with one
// peer: two per fill, for a fill's stream that is still closing when the
// fill goes on (or starts again) on a new one.
func fillStreams(maxFills int) int { return 2 * maxFills }

// resourceManager is libp2p's default resource manager (DefaultLimits
// scaled to this machine, with the bundled services' limits) with room for
// maxFills fills at once from one peer and as many served to one peer,
// where the defaults fit about 6 (16 MiB for a protocol with one peer).
// The fill protocol's budgets are exact, derived from maxFills alone, and
// added to the peer's and the system's, so that fills neither take from
// nor are refused by the rest of libp2p's traffic.
func resourceManager(maxFills int) (network.ResourceManager, error) {
	l := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&l)
	run, serve := runMemory(maxFills), serveMemory(maxFills)
	streams := fillStreams(maxFills)
	none := rcmgr.BaseLimitIncrease{}

	// The fills this node runs, from all peers or all from one.
	fills := rcmgr.BaseLimit{StreamsOutbound: streams, Streams: streams, Memory: run}
	l.AddServiceLimit(serviceName, fills, none)
	l.AddServicePeerLimit(serviceName, fills, none)
	// The fills one peer asks of this node; all peers together share
	// libp2p's default for a service.
	l.AddServicePeerLimit(serveService, rcmgr.BaseLimit{StreamsInbound: streams, Streams: streams, Memory: serve}, none)
	// The protocol carries both.
	l.AddProtocolPeerLimit(FillProtocol, rcmgr.BaseLimit{
		StreamsInbound: streams, StreamsOutbound: streams, Streams: 2 * streams, Memory: run + serve,
	}, none)
	proto := l.ProtocolBaseLimit
	grow(&proto, streams, run+serve)
	l.AddProtocolLimit(FillProtocol, proto, l.ProtocolLimitIncrease)
	// One peer, and the whole host, hold the fills on top of the rest.
	grow(&l.PeerBaseLimit, streams, run+serve)
	grow(&l.SystemBaseLimit, streams, run+serve)
	grow(&l.TransientBaseLimit, streams, 0) // streams wait there until their protocol is known

	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(l.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}

// grow adds streams each way and memory to b.
func grow(b *rcmgr.BaseLimit, streams int, memory int64) {
	b.StreamsInbound += streams
	b.StreamsOutbound += streams
	b.Streams += 2 * streams
	b.Memory += memory
}
