package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Badger layout. A recording has a stable stream id (StreamID(key)) and a
// store-local sequence number; segment keys use the sequence so that a
// recording deleted in the background never touches a new recording of the
// same key.
//
//	m/<stream id hex>                 header: JSON of the Manifest without Segments, plus store fields
//	i/<seq u64><idx>>6 u32><idx&63 u8>   SegmentInfo, binary (segInfoLen bytes)
//	s/<seq u64><idx>>6 u32><idx&63 u8>   segment bytes (see segment.go)
//	d/<seq u64>                       tombstone: the key whose i/ and s/ keys are being deleted
//
// Segment keys sort by index; the split index gives every block of 64
// segments its own byte prefix, by which a live window drops them
// (queueBlockDrops).
//
// A seal writes s/, i/ and m/ in one transaction; the header is O(1) in the
// number of segments, so a seal never rewrites a list that grows with the
// recording.
const (
	pfxHeader = "m/"
	pfxInfo   = 'i'
	pfxSeg    = 's'
	pfxTomb   = 'd'
)

func headerKey(key string) []byte { return []byte(pfxHeader + StreamID(key)) }

const segKeyLen = 2 + 8 + 4 + 1

func segKey(pfx byte, seq uint64, idx uint32) []byte {
	b := make([]byte, segKeyLen)
	b[0], b[1] = pfx, '/'
	binary.BigEndian.PutUint64(b[2:], seq)
	binary.BigEndian.PutUint32(b[10:], idx>>blockShift)
	b[14] = byte(idx & (1<<blockShift - 1))
	return b
}

// segKeyIndex is the segment index of a segKey.
func segKeyIndex(k []byte) (uint32, bool) {
	if len(k) != segKeyLen || k[14] >= 1<<blockShift {
		return 0, false
	}
	return binary.BigEndian.Uint32(k[10:])<<blockShift | uint32(k[14]), true
}

func seqPrefix(pfx byte, seq uint64) []byte {
	b := make([]byte, 10)
	b[0], b[1] = pfx, '/'
	binary.BigEndian.PutUint64(b[2:], seq)
	return b
}

const headerVersion = 1

// header is what m/<id> holds: the manifest minus its segment list, plus the
// store's bookkeeping for the recording.
type header struct {
	Version     int           `json:"v"`
	Seq         uint64        `json:"seq"`
	M           Manifest      `json:"manifest"`
	FirstIndex  uint32        `json:"first_index"` // first segment still stored (live windows drop from the front)
	NextIndex   uint32        `json:"next_index"`  // index the next sealed segment gets
	StoredBytes int64         `json:"stored_bytes"`
	LastTT      time.Duration `json:"last_tt"`
	LastPN      uint64        `json:"last_pn"`
	HasLast     bool          `json:"has_last"`
	AutoDur     bool          `json:"auto_duration"` // Duration follows the stored span
	Pinned      bool          `json:"pinned"`
	Hits        uint64        `json:"hits"`
	LastAccess  time.Time     `json:"last_access"`
}

func encodeHeader(h *header) ([]byte, error) {
	c := *h
	c.Version = headerVersion
	c.M.Segments = nil
	return json.Marshal(&c)
}

// maxHeaderBytes bounds a stored header (SDP and tracks are small).
const maxHeaderBytes = 1 << 20

// decodeHeader decodes and validates m/<id> of key (key may be "" when unknown).
func decodeHeader(key string, data []byte) (header, error) {
	var h header
	name := key
	if name == "" {
		name = "(unknown key)"
	}
	if len(data) > maxHeaderBytes {
		return h, fmt.Errorf("manifest of %s: %w: %d bytes", name, ErrCorrupt, len(data))
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return header{}, fmt.Errorf("manifest of %s: %w: %v", name, ErrCorrupt, err)
	}
	if key == "" && h.M.Key != "" {
		name = h.M.Key
	}
	if err := h.validate(key); err != nil {
		return header{}, fmt.Errorf("manifest of %s: %w: %v", name, ErrCorrupt, err)
	}
	// What cannot be written back (e.g. a time zone offset of +24:00, which
	// time.Time parses but will not marshal) would fail every later seal.
	if _, err := encodeHeader(&h); err != nil {
		return header{}, fmt.Errorf("manifest of %s: %w: %v", name, ErrCorrupt, err)
	}
	return h, nil
}

func (h *header) validate(key string) error {
	switch {
	case h.Version != headerVersion:
		return fmt.Errorf("version %d", h.Version)
	case h.M.Key == "":
		return fmt.Errorf("empty key")
	case key != "" && h.M.Key != key:
		return fmt.Errorf("holds key %q", h.M.Key)
	case len(h.M.Tracks) > 256:
		return fmt.Errorf("%d tracks", len(h.M.Tracks))
	case len(h.M.Segments) != 0:
		return fmt.Errorf("segment list in header")
	case h.FirstIndex > h.NextIndex:
		return fmt.Errorf("first index %d after next index %d", h.FirstIndex, h.NextIndex)
	case h.StoredBytes < 0:
		return fmt.Errorf("negative size")
	}
	switch h.M.State {
	case StateFilling, StateComplete, StatePartial, StateLive:
	default:
		return fmt.Errorf("state %q", h.M.State)
	}
	return nil
}

// segInfoLen is the size of an encoded SegmentInfo: version, index, three tts,
// first pn, packets, size, hash.
const segInfoLen = 1 + 4 + 8*3 + 8 + 4 + 4 + 32

// Version 2 of a segment info: version 1's fields, then the CRC-32C of
// the segment bytes (u32) and the Seal (zeros when unsealed). Version 1
// infos (written before) have neither.
const segInfoSealedLen = segInfoLen + 4 + SealLen

func encodeSegInfo(si *SegmentInfo) []byte {
	b := make([]byte, 0, segInfoSealedLen)
	v := byte(2)
	if !si.hasCRC && si.Seal.IsZero() {
		v = 1 // as it was read
	}
	b = append(b, v)
	b = binary.BigEndian.AppendUint32(b, si.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(si.FirstTT))
	b = binary.BigEndian.AppendUint64(b, uint64(si.LastTT))
	b = binary.BigEndian.AppendUint64(b, uint64(si.FirstKeyTT))
	b = binary.BigEndian.AppendUint64(b, si.FirstPN)
	b = binary.BigEndian.AppendUint32(b, si.Packets)
	b = binary.BigEndian.AppendUint32(b, si.Size)
	b = append(b, si.Hash[:]...)
	if v == 1 {
		return b
	}
	b = binary.BigEndian.AppendUint32(b, si.CRC)
	return append(b, si.Seal[:]...)
}

func decodeSegInfo(data []byte) (SegmentInfo, error) {
	var si SegmentInfo
	switch {
	case len(data) == segInfoLen && data[0] == 1:
	case len(data) == segInfoSealedLen && data[0] == 2:
		si.CRC, si.hasCRC = binary.BigEndian.Uint32(data[segInfoLen:]), true
		copy(si.Seal[:], data[segInfoLen+4:])
	default:
		return si, corruptf("segment info of %d bytes", len(data))
	}
	d := data[1:]
	si.Index = binary.BigEndian.Uint32(d)
	si.FirstTT = time.Duration(binary.BigEndian.Uint64(d[4:]))
	si.LastTT = time.Duration(binary.BigEndian.Uint64(d[12:]))
	si.FirstKeyTT = time.Duration(binary.BigEndian.Uint64(d[20:]))
	si.FirstPN = binary.BigEndian.Uint64(d[28:])
	si.Packets = binary.BigEndian.Uint32(d[36:])
	si.Size = binary.BigEndian.Uint32(d[40:])
	copy(si.Hash[:], d[44:76])
	switch {
	case si.Packets == 0:
		return si, corruptf("segment info: no packets")
	case si.Size > MaxSegmentBytes || si.Size < segHeaderLen:
		return si, corruptf("segment info: size %d", si.Size)
	case uint64(si.Packets) > uint64(si.Size)/minRecordLen:
		return si, corruptf("segment info: %d packets in %d bytes", si.Packets, si.Size)
	case si.FirstKeyTT < -1:
		return si, corruptf("segment info: key tt %d", si.FirstKeyTT)
	}
	return si, nil
}
