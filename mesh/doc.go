// Package mesh is the peer-to-peer side of a node: the libp2p host, the
// Kademlia DHT in which nodes provide the streams they hold, and the fill
// protocol that copies a stored recording from one node to another.
//
// It never imports package rtspedge; it reads and writes recordings only
// through package store. Besides the fill protocol it answers the
// catalogue protocol (below): the list of what a node holds, and the
// filler protocol (below): which node opens a stream's origin session. What to fetch, from whom first, and when to fall
// back to the origin is the node's decision, not this package's.
//
// # Host and DHT
//
// A Mesh is one libp2p host (TCP and QUIC, the default Noise/TLS security,
// yamux) whose Ed25519 identity key lives in Config.DataDir/peer.key (mode
// 0600), so the peer id survives restarts. With Config.PSKFile the host joins
// a libp2p private network and is TCP-only (QUIC cannot carry the pnet
// handshake); Config.AllowPeers installs a connection gater that admits only
// the listed peer ids. Nodes join through Config.Bootstrap multiaddrs and, with
// Config.MDNS, find LAN neighbours by mDNS (service "_rtspmesh._udp").
//
// The DHT is go-libp2p-kad-dht in server mode under the protocol prefix
// /rtspmesh (so /rtspmesh/kad/1.0.0), value records disabled. A stream key is
// announced under KeyCID(key): the SHA-256 of the key (the bytes behind
// store.StreamID) as a CIDv1 with the raw codec. Provider records live
// Config.ProviderTTL (default 1h) on the nodes that store them, so every node
// of a mesh must set the same value; a node re-announces its keys every
// Config.ReprovideInterval (< TTL/2, default TTL/3) and retries a failed
// announcement within seconds. Forget stops re-announcing an evicted key: its
// records lapse after at most one TTL, and a fetcher that meets a stale
// provider gets ErrNotProvided and moves on. FindProviders never returns the
// node itself and orders providers by round-trip time (the peerstore's
// average for a connected peer, else one libp2p ping).
//
// # Fill protocol /rtspmesh/fill/1.6.0
//
// One libp2p stream per fill, opened by the node that wants the recording
// (the client). All integers are big-endian. Lengths are bounded; a peer that
// exceeds a bound, sends an unknown value or misses a deadline has its stream
// reset.
//
// Request (client → server), then the client sends nothing more; the server
// treats a read that returns (reset or close) as the client going away:
//
//	u16  key length L, 1 ≤ L ≤ 4096 (MaxKeyLen)
//	L    key: the canonical stream URL, UTF-8, never with user info
//	u32  from: index of the first segment wanted, or 0xFFFFFFFF
//	     (FromLiveEdge): a live recording's packets from the start of its
//	     open segment, with no sealed segments
//	u8   flags: bit 0 (open) relay an on-demand recording's open segment
//	     packet by packet (below); the client sets it only when the server
//	     is a trusted signer. Other bits 0, else bad request.
//
// Answer head (server → client), which the client waits for at most
// Config.AnswerTimeout (default 2 s) plus four round trips, connection
// set-up included; a provider that announced the key and answers "not
// found" is skipped for that key for Config.DistrustFor:
//
//	u8   status: 0 OK, 1 not found (no recording of the key: a stale
//	     provider), 2 unavailable (that segment left a live window; the
//	     live edge of a recording that is not live; a live recording
//	     whose node is between two upstreams, its manifest's Source
//	     empty), 3 bad request, 4 server error. Any status but 0 ends
//	     the stream.
//	u32  manifest length M, 1 ≤ M ≤ 4 MiB (MaxManifestLen)      } status 0
//	M    manifest: store.Manifest as JSON, header only — no      } only
//	     segment list, zero packet and byte counts
//
// Then frames, each starting with a type byte:
//
//	segment   u8 1, u32 index, 32-byte SHA-256 of the segment bytes,
//	          129-byte seal (Provenance, below), u32 length N
//	          (1 ≤ N ≤ 16 MiB, MaxSegmentLen), N bytes: the sealed segment
//	          exactly as store.Segment returns it
//	end       u8 2, u8 state (1 complete, 2 partial, 3 a live stream its
//	          origin ended), u32 next index (one past the recording's last
//	          segment), u64 duration in ns, u8 seal length S (0 or 97),
//	          S bytes: the end seal (Provenance, below)
//	keepalive u8 3 (no body)
//	packet    u8 4, u32 length N (1 ≤ N ≤ store.MaxRecordBytes), N bytes:
//	          one packet record of the segment encoding (store.AppendRecord)
//	clock     u8 5, u8 track, u32 RTP timestamp, u64 NTP time as Unix
//	          nanoseconds (1 ≤ value < 2^63): the track's RTP↔NTP mapping
//	          (store.Track.Clock, from the origin's RTCP sender reports),
//	          live relays only (new in 1.2.0; 1.1.0 had no clock frame)
//	seal      u8 6, u32 index, 32-byte SHA-256, 129-byte seal: segment
//	          index, whose packets were relayed as packet frames, is
//	          sealed with this hash and seal (open relays only)
//	checkpoint u8 7, u8 version 1, 32-byte signer (an Ed25519 public
//	          key), 64-byte signature, u16 count N (1 ≤ N ≤ 1024,
//	          MaxCheckpointPackets), then N times: u64 packet number,
//	          32-byte SHA-256 of the packet's record (a packet frame's N
//	          bytes): relayed packets signed (Provenance, below), live
//	          relays and open relays only
//
// 1.3.0 added the seals to the segment and end frames; 1.4.0 the request's
// flags byte and the seal frame (an on-demand recording's open segment
// relayed packet by packet); 1.5.0 the checkpoint frame (a live
// recording's packets past its sealed segments signed, where 1.4.0 trusted
// the relay); 1.6.0 checkpoints in open relays too (an on-demand
// recording's open segment signed packet by packet, where 1.5.0 trusted
// the relay until the segment's seal). No frame's bytes changed.
//
// The server sends the segments from `from` in index order (a live recording
// asked from 0 starts at its oldest segment). At the last sealed segment of a
// recording that is still filling it waits (store.WaitSegment) and follows new
// segments, sending a keepalive every 2 s (KeepaliveInterval) while it waits;
// when the recording is no longer filling it sends the end frame and closes
// the stream. The open (unsealed) segment of an on-demand recording is sent
// only to a client that set the open flag:
//
// An on-demand recording still filling, asked with the open flag, is relayed
// packet by packet from its first segment that is not sealed when the
// server reaches it: packet frames as the packets are stored, each named by
// a checkpoint frame as a live relay's are (below: a received one before
// the packet, else the server's own, at the latest before the segment's
// seal frame or the end frame), and after the last packet of each
// segment, once the segment is sealed and stored, a seal frame with its
// index, hash and seal; never another segment frame.
// When the fill ends complete the server sends the seal of the last
// segment and the end frame; when it ends partial (its origin failed, the
// node stops), only the end frame: every client then goes on from its next
// source with what it was relayed of that segment, as it would had the
// server died, rather than some clients holding that segment and others
// another cut of it from the node that takes over. The first packet is written at once; after
// each write the server gathers packets for up to 50 ms (OpenBatch) before
// the next, since one write per video frame costs both nodes more than the
// packets. A tailing node's players so get their first packet about one
// mesh round trip after the node that pulls from the origin stores it, and
// the others within 50 ms, not a segment (about a second) later.
//
// A live recording is relayed packet by packet past its sealed segments: at
// the first segment that is not sealed (or at once for FromLiveEdge) the
// server sends the packets of that segment and every later one as packet
// frames, as they are stored, and never another segment frame. A relay is
// thus a packet behind its source, not a segment. It flushes whenever it has
// nothing more to send at once. Before a packet of a track whose mapping
// (store.Track.Clock) differs from the one last sent on the stream (none at
// first) it sends a clock frame, so a relay's players get the origin's
// capture time in their sender reports; the answer's manifest carries the
// mapping known when the fill began. Every packet frame is named by a
// checkpoint frame: one the server received for that packet (same number,
// same record hash, signed over the answer's header digest D) goes out
// before the packet, once; a packet it holds none for (this node pulls the
// stream from its origin, or it got the packet inside a sealed segment) is
// named by the server's own checkpoint, signed with its identity key and
// written before a flush: one per write, but at most one a millisecond
// (CheckpointEvery; a packet then waits at most that long for its
// checkpoint, which comes without waiting for another packet), and at most
// 1024 packets apart. The server sends a keepalive every 500 ms
// (LiveKeepaliveInterval) while no packet comes (its own upstream may be
// reconnecting), and sends the end frame when its recording stops being
// written: state 3 when its origin ended the stream (the client then ends
// cleanly too, and so do its players), else partial (the client moves on to
// another source). While it serves a live recording it calls
// Config.ServingLive, so its node keeps the upstream open for the relays.
//
// Each write has a 30 s deadline; segments are written whole through a
// 64 KiB buffer.
//
// The client verifies every segment's seal (Provenance, below), then its hash
// and decoding with store.Writer.CheckOwned, before it is stored, and expects consecutive indexes; a bad segment
// ends the fill with ErrBadSegment, and the peer is not used again for it.
// Each segment is read into a buffer of its own, which the store keeps
// (CheckOwned: no copy); once the segment is stored the store gives the
// buffer back unless a reader or the segment cache took the segment while
// its commit was in flight (store.Writer.SetSpare), and the next segment is
// read into it: no allocation, no zeroing, no new heap pages per segment.
// Packets of an on-demand open segment are held, as a live fill's are
// (below), until a verified checkpoint names them, then appended in their
// order (store.Writer.AppendRelayed: readers see them at once); a seal
// frame is held behind the packets before it. Its seal is verified as a
// segment's, then the packets must encode to exactly the hash it names
// (store.Writer.SealRelayed), else the fill ends with ErrRelayedSeal (an
// ErrBadSeal: the peer is skipped) and the node drops the whole recording
// and ends its players: a trusted signer that signed checkpoints of
// packets other than those it sealed. Relayed packets whose seal never comes (the peer
// went away) are continued by the next source: a fill from segment index
// skips those it already holds at the same position and, at the first that
// differs, keeps only those before it (a player past that point reads on
// at its position), and a whole segment frame of that index replaces them;
// a recording never stores them (store.Writer.Finish drops them), unless
// the node takes the fill over from the origin, which then signs them with
// the segment as its own.
// A live fill's packet frames are held, with the clock frames behind them,
// until a verified checkpoint (Provenance, below) names the packet's number
// and the SHA-256 of its record, then decoded (store.DecodeRecord) and
// appended with store.Writer.Append, in their order, clock frames kept
// with store.Writer.SetClock (a track the manifest lacks is a protocol
// violation). A packet that a checkpoint names with another hash, more
// than 4096 frames held, or a packet held for 1 s (CheckpointWait; the
// read deadline ends there, so a relay that goes silent does not stretch
// it) ends a live or open fill with ErrBadSeal: the relay is skipped and
// nothing it sent unverified was stored. A checkpoint frame in a fill
// that is neither live nor open is a protocol violation. From FromLiveEdge, packets the writer already holds
// (by packet number, within a second of its last transmit time) are skipped.
// Nothing arriving for Config.StallTimeout (default 15 s; for a live
// recording at most 2 s, LiveStallTimeout) ends it with ErrStalled; live
// packets arriving more than 2 s (LiveBehindLimit) later than their transmit
// times say, against the earliest one, end it with ErrBehind. The answer's
// manifest lists at most 32 relay peer ids in Via (MaxVia). Reading the network and appending to the store overlap (up to
// four segments in flight, eight in a deep pipeline: Resource limits). The fill is as fast as the link and the store
// allow, never paced at playback speed. After an error the writer holds only
// verified segments and the node can resume at the next index elsewhere.
//
// # Resource limits
//
// The host's libp2p resource manager is libp2p's default (DefaultLimits
// scaled to the machine, with the bundled services' limits) plus room for
// Config.MaxFills (a node's fills.max_concurrent, default 64, at most
// MaxMaxFills) fills at once from one peer, where the default gave the
// fill protocol 16 MiB with one peer: about 6 fills. A fill this node runs
// (service rtspmesh.fill) reserves 1600 KiB while Run runs: the read
// buffer and the shallow pipeline (4 checked and 2 read segments of 256
// KiB); the first 4 fills at once reserve 1280 KiB more and run the deep
// pipeline (8 and 3). A fill it serves (service rtspmesh.fill.serve)
// reserves its 64 KiB write buffer. The budgets are exact, derived from
// MaxFills alone, and added to the peer's and the system's limits:
//
//	fills run, with one peer or all   MaxFills × 1600 KiB + 4 × 1280 KiB,
//	                                  2 × MaxFills streams
//	fills served, to one peer         2 × MaxFills streams × 64 KiB
//	the fill protocol with one peer   both: FillMemory(MaxFills), 113 MiB
//	                                  for 64
//
// So a peer cannot make a node reserve more than FillMemory(MaxFills) for
// the fill protocol, nor hold more than 2 × MaxFills fill streams to it
// (the next is reset); fills served to all peers together share libp2p's
// default for a service.
//
// # Designated filler and the filler protocol /rtspmesh/filler/1.1.0
//
// Looking up providers cannot stop a herd (every node misses before any has
// announced), so each stream key has one designated filler, the only node
// that opens the stream's origin session (DESIGN.md §11). The nodes agree
// on it without a word: Filler(key) is, among the members a node knows
// (itself and every connected peer whose identify says it speaks this
// protocol; Members), the one whose SHA-256(peer id bytes) is closest to
// SHA-256(key) in XOR distance, the smaller peer id string on a tie (two
// ids with the same hash). It is the rule Kademlia uses for the closest
// peer, so no state, record or round trip is needed; a node that knows the
// same members as another picks the same filler.
//
// Why not a lease in the DHT (Coral's "fetching" record, a put-if-absent):
// the DHT here stores provider records only (values are disabled), a lease
// needs a round trip to the key's closest peers before every cold fill and
// a renewal and expiry to survive a dead holder, and it still splits in a
// partition. The rule costs nothing on a hit, and a dead filler is replaced
// as soon as its neighbours see its connection drop.
//
// Failure modes: (1) views differ while a node joins or leaves (it is not
// yet, or no longer, connected to every member): two nodes may then each
// think they are the filler and open one session each; a node that asks a
// member which knows a closer one is forwarded there (distances only
// shrink, so there is no loop). (2) The filler is unreachable or does not
// accept within the asker's reach bound (node config mesh.filler_reach,
// default 1 s), refuses (not configured for the origin), or dies mid-fill:
// the asker leaves it out and applies the rule again; every asker leaves
// out the same member, so they agree on the next closest, which takes over
// with one more origin session. (3) A partition: each side knows only its
// own members and has its own filler; after healing, new fills agree on one
// filler again, a live fill from the origin on a node that is no longer
// the filler hands over to the filler's relay at a key frame and closes its
// origin session (node/fill: the relay re-based onto its recording with
// PeerFill.SetSplice), and a VOD fill runs to its end. A node that stops closes its origin
// sessions before it leaves the mesh, so its successor's session does not
// overlap it.
//
// One libp2p stream per request, opened by the node that missed (the
// asker); integers big-endian. Request (asker → filler), then the asker
// sends only hold updates (below) until it closes the stream:
//
//	u8   version: 2
//	u16  key length L, 1 ≤ L ≤ 4096 (MaxKeyLen)
//	L    key: the canonical stream URL, UTF-8, never with user info
//	u8   flags: bit 0 (unwatched) nobody at the asker plays the stream at
//	     real time (a prefetch): the filler counts the hold as no player,
//	     so its fill of an on-demand stream may pull ranges at once
//	     (node/fill). Other bits 0, else bad request.
//
// Answer (filler → asker), two status bytes:
//
//	u8   accepted: 0 accepted (the filler starts or joins its fill of the
//	     key), 1 not configured (no origin of the filler serves the key:
//	     only configured origins are ever dialed), 3 bad request, 4 busy
//	     (MaxFillerHolds requests held, or the node serves no fills). Any
//	     value but 0 ends the stream.
//	u8   ready (after accepted): 0 the recording exists (the asker now
//	     opens a fill, /rtspmesh/fill, from the filler and tails it as a
//	     neighbour's), 2 the fill failed (the stream ends).
//
// After ready the stream is a hold: the filler keeps its fill of the key
// running (counts it as a reader, so a VOD fill is not abandoned and a
// live one does not linger out) until the asker closes or resets the
// stream, or the mesh closes. While it holds, the asker may send a hold
// update at any time, one byte: a flags byte as in the request, saying
// anew whether anybody at the asker plays the stream (its first player
// joined a prefetch, or its last left a fill that goes on); the filler
// applies the last one it read, and ends the hold (reset) at a byte with
// another bit set. The filler gives the request 5 s to arrive
// and each status byte 5 s to be written; the asker gives the stream
// opening and the accepted byte its reach bound, and the ready byte up to
// 30 s more (the filler looks up providers and opens the origin first).
// A malformed request is answered 3 and the stream closed; a missed
// deadline resets it.
//
// 1.1.0 added the request's flags byte (its version byte became 2) and
// the hold updates (1.0.0's request was version 1 without flags, and the
// asker sent nothing after it: a filler that prefetched for a neighbour
// counted it as a player and pulled one session). A node
// speaks one version, as with the fill protocol: a member that speaks
// another is not a member (Members asks for this protocol id).
//
// # Provenance
//
// A segment hash sent by the peer that sends the segment proves nothing.
// The node that pulls a recording from its origin signs, with its identity
// key (Ed25519), every segment it seals and the recording's end; relays
// store the seals with the segments (store.SegmentInfo.Seal,
// store.Manifest.EndSeal) and pass them on unchanged. All integers are
// big-endian; H(x) is SHA-256.
//
// The header digest D binds a signature to one description of one key:
//
//	D = H("rtspmesh/header/1" 0x00
//	      | u32 len, key | u32 len, SDP | u8 live (0/1)
//	      | u32 track count, per track: u32 len, control | u32 len, media
//	        | u8 payload type | u32 clock rate | u32 len, codec
//	      | u32 len, Cache-Control | u32 len, Expires | u32 len, Last-Modified
//	      | u64 fetched-at, Unix ns (0 when unset))
//
// (a track's RTP↔NTP clock is not signed: it follows sender reports; nor is
// the classification's reason, which the origin session rewrites when its
// PLAY answer arrives, possibly after a neighbour tailing the fill was sent
// the manifest). The
// segment seal, 129 bytes:
//
//	u8   version, 1
//	32   signer: the Ed25519 public key (the peer id derives from it)
//	32   P: the hash of the previous segment (zeros before segment 0)
//	64   signature over "rtspmesh/segment/1" 0x00 | D | u32 index | 32-byte
//	     segment hash | P
//
// The end seal, 97 bytes: u8 version 1, 32-byte signer key, 64-byte
// signature over "rtspmesh/end/1" 0x00 | D | u32 next index | 32-byte hash
// of the last segment (zeros for none) | u8 end state (1 complete, 3 live
// ended) | u64 duration ns.
//
// A client computes D from the answer's manifest and, for every segment
// frame, before it stores a byte: the seal is version 1 and not all zeros;
// the signer is trusted; P equals the hash of the segment it holds before
// this one (for the first segment of a live window that starts past 0, P is
// taken as signed); the signature verifies. An end frame that says complete
// must carry an end seal that verifies against the next index, the last
// hash and the duration, or the recording stays partial. A forged (untrusted
// signer: ErrUntrusted), re-keyed (another D), altered (another hash),
// reordered or truncated recording (the chain or the end seal) fails the
// fill with ErrBadSeal, after which the writer holds only verified
// segments; the provider is logged ("peer content rejected", bad_peer) and
// skipped for Config.DistrustFor, as is one that announced a key it does not
// hold.
//
// A server answers status 1 (not found) for a recording whose last segment
// carries no seal (stored before provenance existed); a client that meets
// unsigned segments anyway refuses them (ErrUnsigned) without taking the
// peer for a liar.
//
// Trusted signers: the node itself, and Config.TrustedSigners when set;
// else Config.AllowPeers; else with a PSKFile every signer (only members
// connect); else, when every Listen address is a loopback one, every signer
// (a test or single-host mesh: signatures are still checked, only the
// signer set is open); else none.
//
// A live recording's packets past its sealed segments are signed in
// checkpoints. A checkpoint's signature is over
//
//	"rtspmesh/live/1" 0x00 | D | u16 N | N times: u64 packet number,
//	32-byte SHA-256 of the packet's record
//
// (the frame's bytes from the count on; the same for a live stream and
// for an on-demand recording's open segment, which D tells apart by its
// live byte). The node that pulls the stream from its origin signs the
// packets it sends, a checkpoint per write (a video frame's packets, or
// an open relay's batch of up to OpenBatch; 26–34 µs to sign, 49–58 µs to
// verify), at most 1000 a second; a relay keeps the checkpoints
// it verified (the last 4096 packets' of up to 64 streams) and passes
// them on unchanged, before the packets they name, so only the first hop
// holds a packet for its checkpoint and later hops verify each packet as
// it comes. A client verifies each checkpoint when it comes (version 1,
// signer trusted, signature over its own D) and stores a packet only once
// one names it (above): a forged, altered or re-keyed packet never
// reaches the store, from which alone players read. A client still takes
// a live fill only from a provider that is itself a trusted signer (that
// provider's sealed segments and the packets it got inside sealed
// segments carry its own signature), and signs the segments it seals from
// the packets itself. An on-demand recording's open segment is signed and
// checked the same way, by the node filling it from its origin: a tailing
// node stores (and so serves) an open-segment packet only once a trusted
// checkpoint names it, so a relay that alters, drops or invents one is
// caught at that packet, not at the segment's end. It is asked (the open
// flag) only of a provider that is itself a trusted signer, and the
// segment's seal must still name exactly the packets relayed: a trusted
// signer that signed checkpoints of other packets than it sealed has
// served them, and that seal drops the recording and ends its players.
//
// # Catalogue protocol /rtspmesh/catalogue/1.0.0
//
// What a node holds, for its neighbours' dashboards (the DHT says who
// provides one key; this says everything one peer holds). Only peers the
// host admits reach it: a private mesh's PSK and the allow-list gate every
// connection before any protocol runs. One stream per question; all
// integers big-endian.
//
// Request (client → server), then the client closes its write side:
//
//	u8   1 (list what you hold); anything else resets the stream
//
// Answer (server → client), then the server closes the stream:
//
//	u8   status: 0 OK (the only value)
//	u8   flags: bit 0 truncated (the node holds more than it lists);
//	     the other bits are 0
//	u16  entry count N, N ≤ 256 (MaxCatalogueEntries)
//	N entries, in increasing byte order of their keys (no key twice):
//	  u16  key length L, 1 ≤ L ≤ 4096 (MaxKeyLen)
//	  L    key: the canonical stream URL, UTF-8, never with user info
//	  u8   state: 1 filling, 2 complete, 3 partial, 4 live
//	  u8   flags: bit 0 live stream; the other bits are 0
//	  u8   source length S, S ≤ 128
//	  S    source: "origin", the peer id the recording came from, or
//	       empty (a live stream between two sources)
//	  u64  RTP bytes stored
//	  u64  duration stored, ns (≤ 2^63-1)
//
// The whole answer is at most 256 KiB (MaxCatalogueLen): a server lists its
// recordings by key until the next entry would pass either bound, and sets
// the truncated flag. Either side gives the exchange 5 s
// (CatalogueTimeout); a server writes at most 4 answers at once and resets
// a request past that. A client reads at most MaxCatalogueLen bytes and
// refuses an answer that breaks any rule above (ErrProtocol).
package mesh
