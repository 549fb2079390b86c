package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Segment encoding (version 1). A segment is written once and never changed;
// its SHA-256 over exactly these bytes is the Hash in its SegmentInfo.
//
//	header  "RMSG" | version u8 = 1 | index u32 BE | count u32 BE        (13 bytes)
//	record  track u8 | flags u8 | ft u16 BE | tt zigzag varint (µs) |
//	        pn uvarint | len uvarint | len bytes of RTP
//
// The index in the header lets a receiver reject a segment offered at the
// wrong position. Every length is bounded before anything is allocated: an RTP
// packet is at most MaxPacketBytes, a segment at most MaxSegmentBytes, and the
// count cannot exceed what the remaining bytes can hold.
const (
	segMagic        = "RMSG"
	segVersion      = 1
	segHeaderLen    = 13
	minRecordLen    = 1 + 1 + 2 + 1 + 1 + 1 + 1 // fixed fields, 1-byte varints, 1 RTP byte
	maxRecordHeader = 1 + 1 + 2 + binary.MaxVarintLen64*3

	// MaxPacketBytes bounds one stored RTP packet.
	MaxPacketBytes = 64 << 10
	// MaxSegmentBytes bounds one encoded segment (Options.SegmentBytes plus one packet must fit).
	MaxSegmentBytes = 8 << 20
)

// maxTTMicros keeps tt*1000 inside a time.Duration.
const maxTTMicros = math.MaxInt64 / int64(time.Microsecond)

func newSegmentBuf(index uint32, capacity int) []byte {
	b := make([]byte, segHeaderLen, capacity)
	copy(b, segMagic)
	b[4] = segVersion
	binary.BigEndian.PutUint32(b[5:], index)
	return b
}

// appendRecord appends p's record to b and returns b and the offset of the RTP bytes.
// p.TT must already be a whole number of microseconds.
func appendRecord(b []byte, p *Packet) ([]byte, int) {
	b = append(b, p.Track, p.Flags)
	b = binary.BigEndian.AppendUint16(b, uint16(p.FT))
	b = binary.AppendVarint(b, int64(p.TT/time.Microsecond))
	b = binary.AppendUvarint(b, p.PN)
	b = binary.AppendUvarint(b, uint64(len(p.RTP)))
	off := len(b)
	return append(b, p.RTP...), off
}

func setSegmentCount(b []byte, count uint32) {
	binary.BigEndian.PutUint32(b[9:], count)
}

// encodeSegment encodes packets as segment index (used by tests and tools; the
// writer encodes incrementally).
func encodeSegment(index uint32, packets []Packet) []byte {
	n := segHeaderLen
	for i := range packets {
		n += maxRecordHeader + len(packets[i].RTP)
	}
	b := newSegmentBuf(index, n)
	for i := range packets {
		b, _ = appendRecord(b, &packets[i])
	}
	setSegmentCount(b, uint32(len(packets)))
	return b
}

// DecodeSegment decodes an encoded segment. The returned packets' RTP slices
// alias data. Damaged input gives an error wrapping ErrCorrupt, never a panic.
func DecodeSegment(data []byte) ([]Packet, error) {
	_, pk, err := decodeSegment(data)
	return pk, err
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// decodeSegment returns the segment's index and packets.
func decodeSegment(data []byte) (uint32, []Packet, error) {
	return decodeSegmentAt(data, nil)
}

// decodeSegmentAt is decodeSegment that also sets *offs, when offs is not
// nil, to each record's offset in data followed by len(data).
func decodeSegmentAt(data []byte, offs *[]uint32) (uint32, []Packet, error) {
	if len(data) > MaxSegmentBytes {
		return 0, nil, corruptf("segment of %d bytes exceeds %d", len(data), MaxSegmentBytes)
	}
	if len(data) < segHeaderLen {
		return 0, nil, corruptf("segment of %d bytes is shorter than its header", len(data))
	}
	if string(data[:4]) != segMagic {
		return 0, nil, corruptf("bad segment magic %q", data[:4])
	}
	if data[4] != segVersion {
		return 0, nil, corruptf("unknown segment version %d", data[4])
	}
	index := binary.BigEndian.Uint32(data[5:])
	count := binary.BigEndian.Uint32(data[9:])
	rest := data[segHeaderLen:]
	if count == 0 {
		return 0, nil, corruptf("empty segment")
	}
	if uint64(count) > uint64(len(rest)/minRecordLen) {
		return 0, nil, corruptf("count %d cannot fit in %d bytes", count, len(rest))
	}
	packets := make([]Packet, count)
	if offs != nil {
		*offs = make([]uint32, 0, count+1)
	}
	for i := range packets {
		if offs != nil {
			*offs = append(*offs, uint32(len(data)-len(rest)))
		}
		var err error
		if packets[i], rest, err = decodeRecord(rest); err != nil {
			return 0, nil, fmt.Errorf("record %d: %w", i, err)
		}
	}
	if len(rest) != 0 {
		return 0, nil, corruptf("%d trailing bytes after %d records", len(rest), count)
	}
	if offs != nil {
		*offs = append(*offs, uint32(len(data)))
	}
	return index, packets, nil
}

// decodeRecord decodes the record at the start of b and returns the rest.
func decodeRecord(b []byte) (Packet, []byte, error) {
	var p Packet
	if len(b) < 4 {
		return p, nil, corruptf("record truncated")
	}
	p.Track, p.Flags = b[0], b[1]
	p.FT = FrameType(binary.BigEndian.Uint16(b[2:]))
	b = b[4:]
	tt, n := binary.Varint(b)
	if n <= 0 || tt > maxTTMicros || tt < -maxTTMicros {
		return p, nil, corruptf("bad tt")
	}
	b = b[n:]
	p.TT = time.Duration(tt) * time.Microsecond
	pn, n := binary.Uvarint(b)
	if n <= 0 {
		return p, nil, corruptf("bad pn")
	}
	b = b[n:]
	p.PN = pn
	l, n := binary.Uvarint(b)
	if n <= 0 || l == 0 || l > MaxPacketBytes {
		return p, nil, corruptf("bad length")
	}
	b = b[n:]
	if uint64(len(b)) < l {
		return p, nil, corruptf("%d RTP bytes, %d left", l, len(b))
	}
	p.RTP = b[:l:l]
	return p, b[l:], nil
}

// segmentInfo summarises decoded packets (Index, Size and Hash are set by the caller).
func segmentInfo(packets []Packet) SegmentInfo {
	si := SegmentInfo{FirstKeyTT: -1}
	for i := range packets {
		si.add(&packets[i])
	}
	return si
}

func (si *SegmentInfo) add(p *Packet) {
	if si.Packets == 0 {
		si.FirstTT, si.FirstPN = p.TT, p.PN
	}
	if si.FirstKeyTT < 0 && p.Flags&FlagKeyStart != 0 {
		si.FirstKeyTT = p.TT
	}
	si.LastTT = p.TT
	si.Packets++
}
