package metainfo

// Frame types as the ft field numbers them (store.FrameType uses the same).
const (
	FrameUnknown uint16 = 0
	FrameKey     uint16 = 1
	FrameB       uint16 = 2
	FrameP       uint16 = 3
)

// FrameTypeH264 classifies one H.264 RTP payload (RFC 6184: single NAL unit,
// STAP-A, FU-A) on its own. ft is FrameKey for IDR slices and parameter sets
// (SPS/PPS travel with the IDR), FrameB/FrameP for other slices by their
// slice_type (a non-IDR I slice counts as P: it is not a random access point),
// FrameP for continuation fragments of non-IDR slices and FrameUnknown for
// anything else (SEI, AUD alone, garbage). keyStart reports that the packet can
// start a key access unit: it begins with an SPS or an IDR slice, or is a
// STAP-A holding one. A packet-by-packet caller that wants exactly one key
// start per access unit uses Tracker.
func FrameTypeH264(payload []byte) (ft uint16, keyStart bool) {
	if len(payload) < 1 {
		return FrameUnknown, false
	}
	switch typ := payload[0] & 0x1f; typ {
	case 24: // STAP-A: 16-bit size, NAL, ...
		ft = FrameUnknown
		for p := payload[1:]; len(p) >= 2; {
			n := int(p[0])<<8 | int(p[1])
			p = p[2:]
			if n == 0 || n > len(p) {
				break
			}
			nft, nks := FrameTypeH264(p[:n])
			ft = mergeFT(ft, nft)
			keyStart = keyStart || nks
			p = p[n:]
		}
		return ft, keyStart
	case 28: // FU-A: FU indicator, FU header (S E R type)
		if len(payload) < 2 {
			return FrameUnknown, false
		}
		start := payload[1]&0x80 != 0
		inner := payload[1] & 0x1f
		switch {
		case inner == 5:
			return FrameKey, start
		case inner == 1 && start:
			return h264SliceType(payload[2:]), false
		case inner == 1:
			return FrameP, false
		}
		return FrameUnknown, false
	case 5:
		return FrameKey, true
	case 7:
		return FrameKey, true
	case 8:
		return FrameKey, false
	case 1:
		return h264SliceType(payload[1:]), false
	default:
		return FrameUnknown, false
	}
}

// mergeFT combines the frame types of NAL units aggregated in one packet: key
// wins, then any slice type over unknown.
func mergeFT(a, b uint16) uint16 {
	switch {
	case a == FrameKey || b == FrameKey:
		return FrameKey
	case a == FrameUnknown:
		return b
	default:
		return a
	}
}

// h264SliceType reads first_mb_in_slice and slice_type from the start of a
// non-IDR slice (after the NAL header).
func h264SliceType(rbsp []byte) uint16 {
	var buf [16]byte
	br := bitReader{b: unescape(buf[:0], rbsp)}
	if _, ok := br.ue(); !ok {
		return FrameP
	}
	st, ok := br.ue()
	if !ok {
		return FrameP
	}
	if st%5 == 1 {
		return FrameB
	}
	return FrameP
}

// unescape copies up to cap(dst) bytes of src without emulation prevention bytes.
func unescape(dst, src []byte) []byte {
	zeros := 0
	for _, c := range src {
		if len(dst) == cap(dst) {
			break
		}
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		dst = append(dst, c)
	}
	return dst
}

type bitReader struct {
	b   []byte
	pos int // in bits
}

func (r *bitReader) bit() (uint32, bool) {
	if r.pos >= len(r.b)*8 {
		return 0, false
	}
	v := uint32(r.b[r.pos/8]>>(7-uint(r.pos%8))) & 1
	r.pos++
	return v, true
}

// ue reads an unsigned Exp-Golomb value (bounded to 31 leading zeros).
func (r *bitReader) ue() (uint32, bool) {
	zeros := 0
	for {
		b, ok := r.bit()
		if !ok {
			return 0, false
		}
		if b == 1 {
			break
		}
		zeros++
		if zeros > 31 {
			return 0, false
		}
	}
	v := uint32(0)
	for i := 0; i < zeros; i++ {
		b, ok := r.bit()
		if !ok {
			return 0, false
		}
		v = v<<1 | b
	}
	return (1<<uint(zeros) - 1) + v, true
}

// FrameTypeH265 classifies one H.265 RTP payload (RFC 7798: single NAL unit,
// AP, FU; no DONL). IRAP pictures (BLA, IDR, CRA) and parameter sets (VPS, SPS,
// PPS) are FrameKey; other VCL NAL units are FrameP (B is not told apart).
// keyStart is true for a packet that begins with a VPS, SPS or an IRAP slice,
// or an AP holding one.
func FrameTypeH265(payload []byte) (ft uint16, keyStart bool) {
	if len(payload) < 2 {
		return FrameUnknown, false
	}
	typ := (payload[0] >> 1) & 0x3f
	switch {
	case typ == 48: // AP: 16-bit size, NAL, ...
		ft = FrameUnknown
		for p := payload[2:]; len(p) >= 2; {
			n := int(p[0])<<8 | int(p[1])
			p = p[2:]
			if n < 2 || n > len(p) {
				break
			}
			nft, nks := FrameTypeH265(p[:n])
			ft = mergeFT(ft, nft)
			keyStart = keyStart || nks
			p = p[n:]
		}
		return ft, keyStart
	case typ == 49: // FU: header (2), FU header (S E type)
		if len(payload) < 3 {
			return FrameUnknown, false
		}
		start := payload[2]&0x80 != 0
		inner := payload[2] & 0x3f
		switch {
		case inner >= 16 && inner <= 23:
			return FrameKey, start
		case inner <= 9:
			return FrameP, false
		}
		return FrameUnknown, false
	case typ >= 16 && typ <= 23:
		return FrameKey, true
	case typ == 32 || typ == 33:
		return FrameKey, true
	case typ == 34:
		return FrameKey, false
	case typ <= 9:
		return FrameP, false
	default:
		return FrameUnknown, false
	}
}

// FrameTypeMJPEG classifies one RTP/JPEG payload (RFC 2435): every frame is a
// key frame; keyStart is true for the first packet of a frame (fragment offset
// 0).
func FrameTypeMJPEG(payload []byte) (ft uint16, keyStart bool) {
	if len(payload) < 8 {
		return FrameKey, false
	}
	off := int(payload[1])<<16 | int(payload[2])<<8 | int(payload[3])
	return FrameKey, off == 0
}
