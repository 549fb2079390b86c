package mesh

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rtspmesh/rtspmesh/store"
)

// FillProtocol is the libp2p protocol id of the fill protocol (see doc.go).
const FillProtocol = "/rtspmesh/fill/1.6.0"

// Bounds of the fill protocol; a peer that exceeds one is cut off.
const (
	MaxKeyLen      = 4096     // request key bytes
	MaxManifestLen = 4 << 20  // manifest JSON bytes
	MaxSegmentLen  = 16 << 20 // segment bytes
	MaxVia         = 32       // relays a live manifest lists (store.Manifest.Via)
)

// Answer status (the first byte of the answer).
const (
	statusOK          byte = 0
	statusNotFound    byte = 1 // the server holds no recording of the key
	statusUnavailable byte = 2 // it holds one but cannot serve from that segment
	statusBadRequest  byte = 3
	statusServerError byte = 4
)

// Frame types.
const (
	frameSegment    byte = 1
	frameEnd        byte = 2
	frameKeepalive  byte = 3
	framePacket     byte = 4 // one packet of a live recording's open segment
	frameClock      byte = 5 // a live track's RTP↔NTP mapping (store.Track.Clock)
	frameSeal       byte = 6 // the seal of an on-demand segment relayed packet by packet
	frameCheckpoint byte = 7 // signed packet hashes of a live recording (checkpoint.go)
)

// Request flags.
const (
	// flagOpen asks for an on-demand recording's open segment packet by
	// packet, each segment's seal after its last packet (new in 1.4.0).
	flagOpen byte = 1 << 0
)

// FromLiveEdge, as the first segment wanted, asks for a live recording's
// packets from the start of its open segment on, with no sealed segments:
// what a node that already holds the stream's past asks a new source for.
const FromLiveEdge = ^uint32(0)

// End states in an end frame.
const (
	endComplete byte = 1
	endPartial  byte = 2
	endLive     byte = 3 // a live stream its origin ended
)

// Protocol errors; test with errors.Is.
var (
	ErrProtocol    = errors.New("mesh: fill protocol violation")
	ErrNotProvided = errors.New("mesh: peer does not hold the recording")
	ErrUnavailable = errors.New("mesh: peer cannot serve the recording from that segment")
	ErrRefused     = errors.New("mesh: peer refused the fill")
	ErrBadSegment  = errors.New("mesh: peer sent a bad segment")
	ErrStalled     = errors.New("mesh: peer stalled")
	ErrPeerPartial = errors.New("mesh: peer's recording ended partial")
	ErrClosed      = errors.New("mesh: closed")
	// ErrRelayedSeal: the packets a peer relayed of an on-demand segment
	// are not what the segment's seal names. The node drops the recording.
	ErrRelayedSeal = fmt.Errorf("%w: relayed packets do not match their segment's seal", ErrBadSeal)
)

// fillRequest is what a client asks for.
type fillRequest struct {
	Key  string
	From uint32 // first segment index wanted
	Open bool   // flagOpen: relay an on-demand recording's open segment
}

// checkKey refuses keys the protocol never carries: empty, too long, not
// UTF-8, or with user info (credentials never cross the mesh). The key itself
// stays out of the error.
func checkKey(key string) error {
	switch {
	case key == "" || len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key length %d not in 1..%d", ErrProtocol, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key is not UTF-8", ErrProtocol)
	}
	if u, err := url.Parse(key); err == nil && u.User != nil {
		return fmt.Errorf("%w: key carries user info", ErrProtocol)
	}
	return nil
}

func appendRequest(b []byte, r fillRequest) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Key)))
	b = append(b, r.Key...)
	b = binary.BigEndian.AppendUint32(b, r.From)
	var flags byte
	if r.Open {
		flags |= flagOpen
	}
	return append(b, flags)
}

// readRequest decodes a request: u16 key length, key, u32 from, u8 flags.
func readRequest(r io.Reader) (fillRequest, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fillRequest{}, fmt.Errorf("read request: %w", err)
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n == 0 || n > MaxKeyLen {
		return fillRequest{}, fmt.Errorf("%w: key length %d", ErrProtocol, n)
	}
	b := make([]byte, n+4+1)
	if _, err := io.ReadFull(r, b); err != nil {
		return fillRequest{}, fmt.Errorf("read request: %w", err)
	}
	flags := b[n+4]
	if flags&^flagOpen != 0 {
		return fillRequest{}, fmt.Errorf("%w: request flags %#x", ErrProtocol, flags)
	}
	req := fillRequest{Key: string(b[:n]), From: binary.BigEndian.Uint32(b[n:]), Open: flags&flagOpen != 0}
	if err := checkKey(req.Key); err != nil {
		return fillRequest{}, err
	}
	return req, nil
}

// wireManifest is the manifest as sent: the header only. Segments, packet
// and byte counts arrive with the segments.
func wireManifest(m store.Manifest) store.Manifest {
	m.Segments = nil
	m.Packets = 0
	m.Bytes = 0
	m.Received = 0
	m.EndSeal = nil // the end frame carries it
	return m
}

// appendOK appends status OK and the manifest.
func appendOK(b []byte, m store.Manifest) ([]byte, error) {
	j, err := json.Marshal(wireManifest(m))
	if err != nil {
		return b, fmt.Errorf("encode manifest: %w", err)
	}
	if len(j) > MaxManifestLen {
		return b, fmt.Errorf("manifest of %d bytes exceeds %d", len(j), MaxManifestLen)
	}
	b = append(b, statusOK)
	b = binary.BigEndian.AppendUint32(b, uint32(len(j)))
	return append(b, j...), nil
}

// readAnswer decodes the answer head: the status, then for status OK the u32
// length and JSON of the manifest.
func readAnswer(r io.Reader) (store.Manifest, error) {
	var h [1]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return store.Manifest{}, fmt.Errorf("read answer: %w", err)
	}
	switch h[0] {
	case statusOK:
	case statusNotFound:
		return store.Manifest{}, ErrNotProvided
	case statusUnavailable:
		return store.Manifest{}, ErrUnavailable
	case statusBadRequest, statusServerError:
		return store.Manifest{}, fmt.Errorf("%w (status %d)", ErrRefused, h[0])
	default:
		return store.Manifest{}, fmt.Errorf("%w: status %d", ErrProtocol, h[0])
	}
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return store.Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n == 0 || n > MaxManifestLen {
		return store.Manifest{}, fmt.Errorf("%w: manifest length %d", ErrProtocol, n)
	}
	j := make([]byte, n)
	if _, err := io.ReadFull(r, j); err != nil {
		return store.Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	var m store.Manifest
	if err := json.Unmarshal(j, &m); err != nil {
		return store.Manifest{}, fmt.Errorf("%w: manifest: %v", ErrProtocol, err)
	}
	if err := checkKey(m.Key); err != nil {
		return store.Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if len(m.Tracks) > 256 {
		return store.Manifest{}, fmt.Errorf("%w: manifest has %d tracks", ErrProtocol, len(m.Tracks))
	}
	if len(m.Via) > MaxVia {
		return store.Manifest{}, fmt.Errorf("%w: manifest lists %d relays", ErrProtocol, len(m.Via))
	}
	for _, id := range m.Via {
		if _, err := peer.Decode(id); err != nil {
			return store.Manifest{}, fmt.Errorf("%w: relay %q is not a peer id", ErrProtocol, id)
		}
	}
	return wireManifest(m), nil
}

// frame is one decoded frame header. For a segment frame the Len segment
// bytes follow on the stream.
type frame struct {
	Type     byte
	Index    uint32        // segment, seal: its index; end: one past the last segment
	Hash     store.Hash    // segment, seal
	Seal     store.Seal    // segment, seal: its provenance seal
	EndSeal  []byte        // end: the end's provenance seal, if any
	Len      uint32        // segment, packet: bytes that follow
	State    store.State   // end: StateComplete or StatePartial
	Ended    bool          // end: a live stream its origin ended (state partial)
	Duration time.Duration // end: the recording's duration
	Track    uint8         // clock: the track
	Clock    store.Clock   // clock: its mapping
	Raw      []byte        // checkpoint: the whole frame
}

const (
	segmentHeaderLen = 1 + 4 + 32 + store.SealLen + 4
	endFrameLen      = 1 + 1 + 4 + 8 + 1 // then the end seal's bytes
	packetHeaderLen  = 1 + 4
	clockFrameLen    = 1 + 1 + 4 + 8
	sealFrameLen     = 1 + 4 + 32 + store.SealLen
)

// appendSealFrame appends a seal frame: type 6, u32 index, 32-byte hash,
// the segment's seal.
func appendSealFrame(b []byte, index uint32, h store.Hash, seal *store.Seal) []byte {
	b = append(b, frameSeal)
	b = binary.BigEndian.AppendUint32(b, index)
	b = append(b, h[:]...)
	return append(b, seal[:]...)
}

// decodeSealFrame decodes type 6, u32 index, 32-byte hash, seal.
func decodeSealFrame(b []byte) (frame, error) {
	if len(b) != sealFrameLen || b[0] != frameSeal {
		return frame{}, fmt.Errorf("%w: seal frame", ErrProtocol)
	}
	f := frame{Type: frameSeal, Index: binary.BigEndian.Uint32(b[1:5])}
	copy(f.Hash[:], b[5:37])
	copy(f.Seal[:], b[37:])
	return f, nil
}

// appendClock appends a clock frame: type 5, u8 track, u32 RTP timestamp,
// u64 NTP time as Unix nanoseconds.
func appendClock(b []byte, track uint8, c store.Clock) []byte {
	b = append(b, frameClock, track)
	b = binary.BigEndian.AppendUint32(b, c.RTP)
	return binary.BigEndian.AppendUint64(b, uint64(c.NTP.UnixNano()))
}

// decodeClock decodes type 5, u8 track, u32 RTP timestamp, u64 Unix ns
// (after 1970, before 2262).
func decodeClock(b []byte) (frame, error) {
	if len(b) != clockFrameLen || b[0] != frameClock {
		return frame{}, fmt.Errorf("%w: clock frame", ErrProtocol)
	}
	ns := binary.BigEndian.Uint64(b[6:14])
	if ns == 0 || ns > math.MaxInt64 {
		return frame{}, fmt.Errorf("%w: clock frame time %d", ErrProtocol, ns)
	}
	return frame{Type: frameClock, Track: b[1],
		Clock: store.Clock{RTP: binary.BigEndian.Uint32(b[2:6]), NTP: time.Unix(0, int64(ns)).UTC()}}, nil
}

// appendPacket appends a packet frame: type 4, u32 length, the record.
func appendPacket(b []byte, p *store.Packet) []byte {
	b = append(b, framePacket, 0, 0, 0, 0)
	start := len(b)
	b = store.AppendRecord(b, p)
	binary.BigEndian.PutUint32(b[start-4:], uint32(len(b)-start))
	return b
}

// decodePacketHeader decodes type 4, u32 length.
func decodePacketHeader(b []byte) (frame, error) {
	if len(b) != packetHeaderLen || b[0] != framePacket {
		return frame{}, fmt.Errorf("%w: packet header", ErrProtocol)
	}
	f := frame{Type: framePacket, Len: binary.BigEndian.Uint32(b[1:5])}
	if f.Len == 0 || f.Len > store.MaxRecordBytes {
		return frame{}, fmt.Errorf("%w: packet record length %d", ErrProtocol, f.Len)
	}
	return f, nil
}

func appendSegmentHeader(b []byte, index uint32, h store.Hash, seal *store.Seal, n int) []byte {
	b = append(b, frameSegment)
	b = binary.BigEndian.AppendUint32(b, index)
	b = append(b, h[:]...)
	b = append(b, seal[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// endOf is the end frame of a recording whose manifest is m.
func endOf(m store.Manifest) frame {
	return frame{Type: frameEnd, State: m.State, Ended: m.Live && m.Ended, Index: m.NextSegment(), Duration: m.Duration, EndSeal: m.EndSeal}
}

// appendEnd appends end frame f: type 2, u8 state, u32 next index, u64
// duration (ns), u8 seal length (0 or endSealLen), the end seal.
func appendEnd(b []byte, f frame) []byte {
	s := endPartial
	switch {
	case f.Ended:
		s = endLive
	case f.State == store.StateComplete:
		s = endComplete
	}
	b = append(b, frameEnd, s)
	b = binary.BigEndian.AppendUint32(b, f.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(max(f.Duration, 0)))
	if len(f.EndSeal) != endSealLen {
		return append(b, 0)
	}
	b = append(b, endSealLen)
	return append(b, f.EndSeal...)
}

// readFrame decodes one frame header (not a segment's bytes).
func readFrame(r io.Reader) (frame, error) {
	var b [segmentHeaderLen]byte
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return frame{}, err
	}
	switch b[0] {
	case frameKeepalive:
		return frame{Type: frameKeepalive}, nil
	case frameSegment:
		if _, err := io.ReadFull(r, b[1:]); err != nil {
			return frame{}, noEOF(err)
		}
		return decodeSegmentHeader(b[:])
	case frameEnd:
		if _, err := io.ReadFull(r, b[1:endFrameLen]); err != nil {
			return frame{}, noEOF(err)
		}
		f, err := decodeEnd(b[:endFrameLen])
		if err != nil || len(f.EndSeal) == 0 {
			return f, err
		}
		if _, err := io.ReadFull(r, f.EndSeal); err != nil {
			return frame{}, noEOF(err)
		}
		return f, nil
	case framePacket:
		if _, err := io.ReadFull(r, b[1:packetHeaderLen]); err != nil {
			return frame{}, noEOF(err)
		}
		return decodePacketHeader(b[:packetHeaderLen])
	case frameClock:
		if _, err := io.ReadFull(r, b[1:clockFrameLen]); err != nil {
			return frame{}, noEOF(err)
		}
		return decodeClock(b[:clockFrameLen])
	case frameSeal:
		if _, err := io.ReadFull(r, b[1:sealFrameLen]); err != nil {
			return frame{}, noEOF(err)
		}
		return decodeSealFrame(b[:sealFrameLen])
	case frameCheckpoint:
		raw, err := readCheckpoint(r)
		if err != nil {
			return frame{}, err
		}
		return frame{Type: frameCheckpoint, Raw: raw}, nil
	}
	return frame{}, fmt.Errorf("%w: frame type %d", ErrProtocol, b[0])
}

// decodeSegmentHeader decodes type 1, u32 index, 32-byte hash, seal, u32
// length.
func decodeSegmentHeader(b []byte) (frame, error) {
	if len(b) != segmentHeaderLen || b[0] != frameSegment {
		return frame{}, fmt.Errorf("%w: segment header", ErrProtocol)
	}
	f := frame{Type: frameSegment, Index: binary.BigEndian.Uint32(b[1:5]), Len: binary.BigEndian.Uint32(b[segmentHeaderLen-4:])}
	copy(f.Hash[:], b[5:37])
	copy(f.Seal[:], b[37:37+store.SealLen])
	if f.Len == 0 || f.Len > MaxSegmentLen {
		return frame{}, fmt.Errorf("%w: segment length %d", ErrProtocol, f.Len)
	}
	return f, nil
}

// decodeEnd decodes type 2, u8 state, u32 next index, u64 duration (ns),
// u8 seal length; EndSeal is sized for the seal bytes that follow.
func decodeEnd(b []byte) (frame, error) {
	if len(b) != endFrameLen || b[0] != frameEnd {
		return frame{}, fmt.Errorf("%w: end frame", ErrProtocol)
	}
	f := frame{Type: frameEnd, Index: binary.BigEndian.Uint32(b[2:6])}
	switch b[1] {
	case endComplete:
		f.State = store.StateComplete
	case endPartial:
		f.State = store.StatePartial
	case endLive:
		f.State, f.Ended = store.StatePartial, true
	default:
		return frame{}, fmt.Errorf("%w: end state %d", ErrProtocol, b[1])
	}
	d := binary.BigEndian.Uint64(b[6:14])
	if d > math.MaxInt64 {
		return frame{}, fmt.Errorf("%w: end duration", ErrProtocol)
	}
	f.Duration = time.Duration(d)
	switch b[14] {
	case 0:
	case endSealLen:
		f.EndSeal = make([]byte, endSealLen)
	default:
		return frame{}, fmt.Errorf("%w: end seal length %d", ErrProtocol, b[14])
	}
	return f, nil
}

// noEOF turns an EOF inside a frame into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
