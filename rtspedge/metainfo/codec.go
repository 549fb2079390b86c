package metainfo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrPacket is returned for a malformed meta-info payload.
var ErrPacket = errors.New("malformed x-RTP-Meta-Info payload")

// Info is the content of one meta-info packet's payload.
type Info struct {
	TT    time.Duration // transmit time (carried in whole milliseconds)
	FT    uint16        // frame type: 0 unknown, 1 key, 2 B, 3 P
	PN    uint64        // packet number from stream start
	SQ    uint16        // RTP sequence number
	PP    uint64        // byte offset in the stored media
	MD    []byte        // the original RTP payload; Decode aliases its input
	HasTT bool
	HasFT bool
	HasPN bool
	HasSQ bool
	HasPP bool
	HasMD bool
}

// maxTTms is the largest tt in milliseconds that fits a time.Duration.
const maxTTms = uint64(math.MaxInt64 / int64(time.Millisecond))

// Encode appends the payload of a meta-info packet carrying i to dst: the
// fields of f in order (compressed when they have an id), md last and always in
// standard form. Fields of f that Info cannot express (unknown names) are
// skipped. md longer than 65535 bytes is truncated to fit its 16-bit length.
func Encode(dst []byte, f Fields, i Info) []byte {
	md := false
	for _, fl := range f {
		var body [8]byte
		var n int
		switch fl.Name {
		case NameTT:
			ms := uint64(0)
			if i.TT > 0 {
				ms = uint64(i.TT / time.Millisecond)
			}
			binary.BigEndian.PutUint64(body[:], ms)
			n = 8
		case NamePN:
			binary.BigEndian.PutUint64(body[:], i.PN)
			n = 8
		case NamePP:
			binary.BigEndian.PutUint64(body[:], i.PP)
			n = 8
		case NameFT:
			binary.BigEndian.PutUint16(body[:], i.FT)
			n = 2
		case NameSQ:
			binary.BigEndian.PutUint16(body[:], i.SQ)
			n = 2
		case NameMD:
			md = true
			continue
		default:
			continue
		}
		if fl.ID >= 0 && fl.ID <= 127 {
			dst = append(dst, 0x80|byte(fl.ID), byte(n))
		} else {
			dst = append(dst, fl.Name[0]&0x7f, fl.Name[1]&0x7f, 0, byte(n))
		}
		dst = append(dst, body[:n]...)
	}
	if md {
		p := i.MD
		if len(p) > math.MaxUint16 {
			p = p[:math.MaxUint16]
		}
		dst = append(dst, 'm', 'd', byte(len(p)>>8), byte(len(p)))
		dst = append(dst, p...)
	}
	return dst
}

// Decode parses a meta-info payload. f maps compressed ids to names; fields in
// standard form are recognised by name whatever f says. Fields with unknown
// names or ids are skipped. A known field with a wrong body size, a field
// given twice, or a truncated field is an error. Info.MD aliases payload.
func Decode(payload []byte, f Fields) (Info, error) {
	var i Info
	for off := 0; off < len(payload); {
		var name string
		var n int
		if payload[off]&0x80 != 0 {
			if len(payload)-off < 2 {
				return Info{}, fmt.Errorf("%w: truncated compressed field at %d", ErrPacket, off)
			}
			name = f.byID(int(payload[off] & 0x7f))
			n = int(payload[off+1])
			off += 2
		} else {
			if len(payload)-off < 4 {
				return Info{}, fmt.Errorf("%w: truncated field at %d", ErrPacket, off)
			}
			name = knownName(payload[off], payload[off+1]&0x7f)
			n = int(binary.BigEndian.Uint16(payload[off+2:]))
			off += 4
		}
		if n > len(payload)-off {
			return Info{}, fmt.Errorf("%w: field %q length %d beyond payload", ErrPacket, name, n)
		}
		body := payload[off : off+n]
		off += n
		if err := i.set(name, body); err != nil {
			return Info{}, err
		}
	}
	return i, nil
}

func (i *Info) set(name string, body []byte) error {
	var seen *bool
	want := 0
	switch name {
	case NameTT:
		seen, want = &i.HasTT, 8
	case NamePN:
		seen, want = &i.HasPN, 8
	case NamePP:
		seen, want = &i.HasPP, 8
	case NameFT:
		seen, want = &i.HasFT, 2
	case NameSQ:
		seen, want = &i.HasSQ, 2
	case NameMD:
		seen, want = &i.HasMD, len(body)
	default:
		return nil // unknown field: skipped
	}
	if *seen {
		return fmt.Errorf("%w: field %s twice", ErrPacket, name)
	}
	if len(body) != want {
		return fmt.Errorf("%w: field %s has %d bytes, want %d", ErrPacket, name, len(body), want)
	}
	*seen = true
	switch name {
	case NameTT:
		ms := binary.BigEndian.Uint64(body)
		if ms > maxTTms {
			return fmt.Errorf("%w: tt %d ms out of range", ErrPacket, ms)
		}
		i.TT = time.Duration(ms) * time.Millisecond
	case NamePN:
		i.PN = binary.BigEndian.Uint64(body)
	case NamePP:
		i.PP = binary.BigEndian.Uint64(body)
	case NameFT:
		i.FT = binary.BigEndian.Uint16(body)
	case NameSQ:
		i.SQ = binary.BigEndian.Uint16(body)
	case NameMD:
		i.MD = body
	}
	return nil
}

// knownName returns the constant for a standard-form field name, "" for an
// unknown one (without allocating).
func knownName(a, b byte) string {
	for _, n := range [...]string{NameTT, NameFT, NamePN, NameSQ, NamePP, NameMD} {
		if n[0] == a && n[1] == b {
			return n
		}
	}
	return ""
}
