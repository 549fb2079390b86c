package store

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// State is where a recording is in its life.
type State string

// Recording states.
const (
	// StateFilling: a writer is appending; readers tail it.
	StateFilling State = "filling"
	// StateComplete: the whole stream is stored; it may be served and announced.
	StateComplete State = "complete"
	// StatePartial: a fill stopped early (origin died, process crashed); it can be
	// resumed but is never served or announced as complete.
	StatePartial State = "partial"
	// StateLive: a rolling window of a live stream that is still being pulled.
	StateLive State = "live"
)

// FrameType is the seed's meta-info "ft" field.
type FrameType uint16

// Frame types, as x-RTP-Meta-Info numbers them.
const (
	FrameUnknown FrameType = 0
	FrameKey     FrameType = 1
	FrameB       FrameType = 2
	FrameP       FrameType = 3
)

// Packet flags.
const (
	// FlagKeyStart marks the first packet of a key frame (an access unit a
	// decoder can start from). Readers positioned by time land on such a packet.
	FlagKeyStart uint8 = 1 << 0
	// FlagMetaInfo marks a packet whose tt/ft/pn came from the origin's
	// x-RTP-Meta-Info rather than being derived by the node.
	FlagMetaInfo uint8 = 1 << 1
)

// Packet is one stored RTP packet with its per-packet meta information.
type Packet struct {
	Track uint8         // index into Manifest.Tracks
	TT    time.Duration // transmit time from presentation start (NPT)
	FT    FrameType     // frame type (video only; FrameUnknown otherwise)
	PN    uint64        // packet number, absolute from stream start
	Flags uint8         // FlagKeyStart, FlagMetaInfo
	RTP   []byte        // the plain RTP packet: 12-byte header (+CSRC/ext) and payload
}

// Track describes one media of a recording.
type Track struct {
	Control     string `json:"control"`      // the origin's control attribute
	Media       string `json:"media"`        // "video", "audio", "application"
	PayloadType uint8  `json:"payload_type"` // RTP payload type
	ClockRate   uint32 `json:"clock_rate"`   // RTP clock rate in Hz
	Codec       string `json:"codec"`        // e.g. "H264", "MPEG4-GENERIC"
	// Clock maps the track's stored RTP timestamps to the origin's wall
	// clock, from the origin's RTCP sender reports; zero when none came.
	Clock Clock `json:"clock,omitzero"`
}

// Clock is one point of a track's RTP↔NTP mapping: the stored RTP
// timestamp RTP is the instant NTP of the origin's wall clock (RFC 3550
// §6.4.1). Timestamps of other packets map through the track's clock rate.
type Clock struct {
	RTP uint32    `json:"rtp"`
	NTP time.Time `json:"ntp"`
}

// IsZero reports whether c holds no mapping.
func (c Clock) IsZero() bool { return c.NTP.IsZero() }

// At is the wall-clock time of RTP timestamp ts by the mapping c, on a
// clock of rate ticks per second; ts is taken as the nearest to c.RTP
// (within 2^31 ticks either way), as RTP timestamps wrap.
func (c Clock) At(ts, rate uint32) time.Time {
	return c.NTP.Add(TicksToDuration(int64(int32(ts-c.RTP)), rate))
}

// Freshness is what the origin said about how long its description stays valid.
type Freshness struct {
	CacheControl string    `json:"cache_control,omitempty"`
	Expires      string    `json:"expires,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	FetchedAt    time.Time `json:"fetched_at"`
}

// Hash is the SHA-256 of a segment's encoded bytes.
type Hash [32]byte

// SealLen is the size of a Seal: a version byte, the signer's 32-byte
// Ed25519 public key, the previous segment's hash and a 64-byte signature
// (see package mesh, "Provenance").
const SealLen = 1 + 32 + 32 + 64

// Seal is one segment's provenance signature, opaque to the store.
type Seal [SealLen]byte

// IsZero reports whether s holds no signature.
func (s *Seal) IsZero() bool { return *s == Seal{} }

// Sealer signs what a writer stores from its origin (the node that pulls a
// recording from the origin vouches for it); package mesh implements it.
type Sealer interface {
	// SealSegment signs segment si (its Index and Hash) of the recording
	// described by m, after the segment whose hash is prev (zero for none).
	SealSegment(m *Manifest, si *SegmentInfo, prev Hash) (Seal, error)
	// SealEnd signs the end of the recording m: complete (on demand) or
	// ended by its origin (live), next being one past its last segment,
	// last that segment's hash.
	SealEnd(m *Manifest, next uint32, last Hash) ([]byte, error)
}

// SegmentInfo describes one sealed segment in a manifest.
type SegmentInfo struct {
	Index      uint32        `json:"index"`        // position in the packet log, from 0
	FirstTT    time.Duration `json:"first_tt"`     // tt of its first packet
	LastTT     time.Duration `json:"last_tt"`      // tt of its last packet
	FirstKeyTT time.Duration `json:"first_key_tt"` // tt of its first FlagKeyStart packet, -1 if none
	FirstPN    uint64        `json:"first_pn"`     // pn of its first packet
	Packets    uint32        `json:"packets"`
	Size       uint32        `json:"size"` // encoded bytes
	Hash       Hash          `json:"hash"`
	// Seal is the provenance signature of the segment (package mesh
	// defines its bytes; zero when the segment is unsealed). The store keeps
	// it with the segment and passes it on unchanged.
	Seal Seal `json:"-"`
	// CRC is the CRC-32C (Castagnoli) of the segment bytes, which local
	// reads check (a recording stored before it existed has none: its
	// reads check Hash).
	CRC    uint32 `json:"-"`
	hasCRC bool

	rtpBytes uint64 // RTP bytes in it; 0 when loaded from disk (not persisted)
}

// Manifest is everything the store knows about one recording except its packets.
type Manifest struct {
	Key       string    `json:"key"` // canonical origin URL (no credentials)
	SDP       []byte    `json:"sdp"` // the origin's session description
	Tracks    []Track   `json:"tracks"`
	Freshness Freshness `json:"freshness"`
	State     State     `json:"state"`
	Live      bool      `json:"live"` // open-ended origin: kept as a rolling window
	// ClassReason says why Live is what it is: which range of the origin
	// (its SDP a=range, its PLAY answer's Range) had an end or none.
	ClassReason string        `json:"class_reason,omitempty"`
	Duration    time.Duration `json:"duration"`        // from the SDP range for VOD; stored span otherwise
	Packets     uint64        `json:"packets"`         // packets stored, over all segments (of a live window: those in it)
	Bytes       uint64        `json:"bytes"`           // RTP bytes stored, over all segments (of a live window: those in it)
	Received    uint64        `json:"received"`        // RTP bytes ever sealed into it: Bytes, plus what a live window dropped
	Segments    []SegmentInfo `json:"segments"`        // sealed segments, in order (a live window drops old ones from the front)
	Source      string        `json:"source"`          // "origin" or the peer id it was filled from; empty while a live fill is between sources
	Via         []string      `json:"via,omitempty"`   // live relays: the peer ids the packets came through, the origin-facing node first, Source last
	MetaInfo    bool          `json:"meta_info"`       // the origin sent x-RTP-Meta-Info
	Ended       bool          `json:"ended,omitempty"` // live: its origin ended the stream (RTCP BYE), not a failure
	// EndSeal is the provenance signature of the recording's end (complete,
	// or a live stream its origin ended); see Sealer.SealEnd.
	EndSeal []byte    `json:"end_seal,omitempty"`
	Created time.Time `json:"created"`
}

// StreamID is the stream id of a key: the hex SHA-256 of the canonical URL.
func StreamID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
