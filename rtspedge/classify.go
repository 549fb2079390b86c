package rtspedge

import (
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	psdp "github.com/pion/sdp/v3"
)

// classification says whether an origin's stream is on demand or live, and
// which range said so (DESIGN.md §7).
type classification struct {
	live     bool
	duration time.Duration // on demand: the end of the range
	reason   string        // e.g. "PLAY Range npt=0-20 has an end"
}

// classify decides on demand or live from the description's a=range
// (session level, else the longest media level) and the PLAY answer's Range
// header ("" before PLAY or when it had none). A finite end in either means
// on demand; an open end or no range at all means live. The PLAY answer is
// the stronger witness: when its range has an end, that end is the duration.
//
// Ranges are read here rather than by gortsplib's headers.Range, which
// cannot parse "now" (gst-rtsp-server describes a VOD as npt=now-20). Only
// npt ranges are read; clock= and smpte= ranges count as no range.
func classify(ssd *sdp.SessionDescription, playRange string) classification {
	playRange = strings.TrimSpace(playRange)
	if end, ok := nptEnd(playRange); ok {
		return classification{duration: end, reason: "PLAY Range " + playRange + " has an end"}
	}
	sdpRng, sdpEnd, sdpHas := describedRange(ssd)
	if sdpHas && sdpEnd > 0 {
		return classification{duration: sdpEnd, reason: "SDP a=range:" + sdpRng + " has an end"}
	}
	var why []string
	if sdpHas {
		why = append(why, "SDP a=range:"+sdpRng+" has no end")
	} else {
		why = append(why, "no SDP a=range")
	}
	switch {
	case playRange != "":
		why = append(why, "PLAY Range "+playRange+" has no end")
	default:
		why = append(why, "no PLAY Range")
	}
	return classification{live: true, reason: strings.Join(why, "; ")}
}

// describedRange is the a=range of a description: the session-level one when
// it has an end, else the media-level one with the latest end, else the
// first range seen. has is false when there is none.
func describedRange(ssd *sdp.SessionDescription) (rng string, end time.Duration, has bool) {
	consider := func(attrs []psdp.Attribute) {
		for _, a := range attrs {
			if a.Key != "range" {
				continue
			}
			v := strings.TrimSpace(a.Value)
			e, ok := nptEnd(v)
			if !has || ok && e > end {
				rng, end, has = v, e, true
			}
		}
	}
	consider(ssd.Attributes)
	if end > 0 {
		return rng, end, has
	}
	for _, md := range ssd.MediaDescriptions {
		consider(md.Attributes)
	}
	return rng, end, has
}

// nptEnd reads the end of an npt range ("npt=now-20", "npt=0.000-20.000",
// "npt=00:00:05-00:01:00;time=..."): ok when it has an end after 0 that can
// be read.
func nptEnd(v string) (time.Duration, bool) {
	v, _, _ = strings.Cut(v, ";")
	name, val, found := strings.Cut(v, "=")
	if !found || !strings.EqualFold(strings.TrimSpace(name), "npt") {
		return 0, false
	}
	_, end, found := strings.Cut(val, "-")
	if !found {
		return 0, false
	}
	d, ok := parseNPTTime(strings.TrimSpace(end))
	return d, ok && d > 0
}

// parseNPTTime reads an npt-time of RFC 2326 §3.6: seconds ("20", "20.5")
// or hours:minutes:seconds ("0:00:20.5"). "now" and "" are no time.
func parseNPTTime(s string) (time.Duration, bool) {
	if s == "" || strings.EqualFold(s, "now") {
		return 0, false
	}
	parts := strings.Split(s, ":")
	if len(parts) != 1 && len(parts) != 3 {
		return 0, false
	}
	var secs float64
	for i, p := range parts {
		if p == "" {
			return 0, false
		}
		if strings.Trim(p, "0123456789.") != "" {
			return 0, false
		}
		f, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return 0, false
		}
		if i < len(parts)-1 {
			if f != float64(int64(f)) || i > 0 && f >= 60 {
				return 0, false
			}
		}
		secs = secs*60 + f
	}
	if secs > float64(maxNPT/time.Second) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

// maxNPT bounds a range end read from an origin (a year: longer is nonsense).
const maxNPT = 365 * 24 * time.Hour
