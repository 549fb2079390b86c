package metainfo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Field names.
const (
	NameTT = "tt" // transmit time, ms from presentation start (u64)
	NameFT = "ft" // frame type (u16)
	NamePN = "pn" // packet number (u64)
	NameSQ = "sq" // RTP sequence number (u16)
	NamePP = "pp" // packet position, byte offset in the stored media (u64)
	NameMD = "md" // the original RTP payload
)

// HeaderName is the RTSP header that negotiates meta-info.
const HeaderName = "x-RTP-Meta-Info"

// NoID marks a field sent in standard (uncompressed) form.
const NoID = -1

// maxFields bounds a header: there are 6 known names; allow some unknown ones.
const maxFields = 32

// ErrHeader is returned for a malformed x-RTP-Meta-Info header.
var ErrHeader = errors.New("malformed x-RTP-Meta-Info header")

// Field is one negotiated field: its two-letter name and, when compressed, its
// id (0..127), else NoID.
type Field struct {
	Name string
	ID   int
}

// Fields is a negotiated field list, in header order.
type Fields []Field

// ParseHeader parses an x-RTP-Meta-Info value such as "tt=0;ft=1;pn;md".
// Names are two 7-bit ASCII letters or digits; ids are 0..127; names and ids
// must be unique. An id given to md is dropped: md is never compressed.
// Unknown names are kept (Intersect drops them).
func ParseHeader(v string) (Fields, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, fmt.Errorf("%w: empty", ErrHeader)
	}
	parts := strings.Split(v, ";")
	if len(parts) > maxFields {
		return nil, fmt.Errorf("%w: more than %d fields", ErrHeader, maxFields)
	}
	var f Fields
	var usedIDs [128]bool
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue // tolerate "tt;;pn" and a trailing ';'
		}
		name, idStr, hasID := strings.Cut(p, "=")
		name = strings.TrimSpace(name)
		if !validName(name) {
			return nil, fmt.Errorf("%w: bad field name %q", ErrHeader, name)
		}
		if f.Has(name) {
			return nil, fmt.Errorf("%w: field %q twice", ErrHeader, name)
		}
		id := NoID
		if hasID {
			n, err := strconv.Atoi(strings.TrimSpace(idStr))
			if err != nil || n < 0 || n > 127 {
				return nil, fmt.Errorf("%w: bad id %q for %s", ErrHeader, idStr, name)
			}
			if name != NameMD {
				if usedIDs[n] {
					return nil, fmt.Errorf("%w: id %d twice", ErrHeader, n)
				}
				usedIDs[n] = true
				id = n
			}
		}
		f = append(f, Field{Name: name, ID: id})
	}
	if len(f) == 0 {
		return nil, fmt.Errorf("%w: no fields", ErrHeader)
	}
	return f, nil
}

func validName(s string) bool {
	if len(s) != 2 {
		return false
	}
	for i := 0; i < 2; i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// String formats the fields as an x-RTP-Meta-Info value ("tt=0;ft=1;pn;md").
func (f Fields) String() string {
	var b strings.Builder
	for i, fl := range f {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(fl.Name)
		if fl.ID >= 0 && fl.Name != NameMD {
			b.WriteByte('=')
			b.WriteString(strconv.Itoa(fl.ID))
		}
	}
	return b.String()
}

// Has reports whether the field name is negotiated.
func (f Fields) Has(name string) bool {
	for _, fl := range f {
		if fl.Name == name {
			return true
		}
	}
	return false
}

// Intersect keeps the requested fields whose names are in supported, in the
// request's order and with the request's ids, and moves md last. An origin
// answers a SETUP with requested.Intersect(what it sends).
func (f Fields) Intersect(supported ...string) Fields {
	var out Fields
	md := false
	for _, fl := range f {
		ok := false
		for _, s := range supported {
			if fl.Name == s {
				ok = true
				break
			}
		}
		switch {
		case !ok:
		case fl.Name == NameMD:
			md = true
		default:
			out = append(out, fl)
		}
	}
	if md {
		out = append(out, Field{Name: NameMD, ID: NoID})
	}
	return out
}

// byID returns the name of compressed id, or "".
func (f Fields) byID(id int) string {
	for _, fl := range f {
		if fl.ID == id && fl.Name != NameMD {
			return fl.Name
		}
	}
	return ""
}
