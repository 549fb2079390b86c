package rtspedge

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	psdp "github.com/pion/sdp/v3"

	"github.com/rtspmesh/rtspmesh/store"
)

// parseSDP decodes a session description as gortsplib's client does.
func parseSDP(b []byte) (*sdp.SessionDescription, *description.Session, error) {
	var ssd sdp.SessionDescription
	if err := ssd.Unmarshal(b); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformedSDP, err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&ssd); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformedSDP, err)
	}
	if len(desc.Medias) == 0 {
		return nil, nil, fmt.Errorf("%w: no media", ErrMalformedSDP)
	}
	if len(desc.Medias) > 255 {
		return nil, nil, fmt.Errorf("%w: %d media, at most 255", ErrMalformedSDP, len(desc.Medias))
	}
	return &ssd, &desc, nil
}

// tracksOf describes the media of desc as store tracks, in order.
func tracksOf(desc *description.Session) []store.Track {
	out := make([]store.Track, len(desc.Medias))
	for i, m := range desc.Medias {
		f := m.Formats[0]
		codec, _, _ := strings.Cut(f.RTPMap(), "/")
		if codec == "" {
			codec = f.Codec()
		}
		out[i] = store.Track{
			Control:     m.Control,
			Media:       string(m.Type),
			PayloadType: f.PayloadType(),
			ClockRate:   uint32(max(f.ClockRate(), 0)),
			Codec:       strings.ToUpper(codec),
		}
	}
	return out
}

// formatNPT writes d as NPT seconds with millisecond precision.
func formatNPT(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// playerDescription rewrites a stored description for players of this node:
// media control URLs become trackID=N (relative to the Content-Base the
// server sends), session and media ranges are replaced by one range that says
// what the node serves. It returns the SDP bytes and the parsed description
// gortsplib's server needs for SETUP.
func playerDescription(m store.Manifest) ([]byte, *description.Session, error) {
	ssd, _, err := parseSDP(m.SDP)
	if err != nil {
		return nil, nil, err
	}
	ps := (*psdp.SessionDescription)(ssd)
	ps.Attributes = dropAttrs(ps.Attributes, "control", "range")
	rng := "npt=0-"
	if !m.Live && m.Duration > 0 {
		rng += formatNPT(m.Duration)
	}
	ps.Attributes = append(ps.Attributes, psdp.Attribute{Key: "range", Value: rng})
	for i, md := range ps.MediaDescriptions {
		md.Attributes = dropAttrs(md.Attributes, "control", "range")
		md.Attributes = append(md.Attributes, psdp.Attribute{Key: "control", Value: "trackID=" + strconv.Itoa(i)})
	}
	out, err := ps.Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: rewrite: %w", ErrMalformedSDP, err)
	}
	_, desc, err := parseSDP(out)
	if err != nil {
		return nil, nil, err
	}
	return out, desc, nil
}

func dropAttrs(attrs []psdp.Attribute, keys ...string) []psdp.Attribute {
	out := attrs[:0:0]
	for _, a := range attrs {
		drop := false
		for _, k := range keys {
			if a.Key == k {
				drop = true
			}
		}
		if !drop {
			out = append(out, a)
		}
	}
	return out
}
