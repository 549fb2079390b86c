package origin

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
)

// describe renders the SDP of a clip: gortsplib's controls (trackID=N, which
// SETUP resolves against the session stream) plus a session-level range,
// npt=0-<duration> for VOD and npt=now- for live.
func describe(c *Clip, live bool) ([]byte, error) {
	d := &description.Session{Title: "rtspmesh origin"}
	for i, m := range c.Desc.Medias {
		d.Medias = append(d.Medias, &description.Media{
			Type:    m.Type,
			Formats: m.Formats,
			Control: "trackID=" + strconv.Itoa(i),
		})
	}
	b, err := d.Marshal(false)
	if err != nil {
		return nil, fmt.Errorf("describe: %w", err)
	}
	rng := "a=range:npt=0-" + npt(c.Duration) + "\r\n"
	if live {
		rng = "a=range:npt=now-\r\n"
	}
	i := bytes.Index(b, []byte("\r\nm="))
	if i < 0 {
		return nil, fmt.Errorf("describe: no media in SDP")
	}
	out := make([]byte, 0, len(b)+len(rng))
	out = append(out, b[:i+2]...)
	out = append(out, rng...)
	return append(out, b[i+2:]...), nil
}

// npt formats a duration as NPT seconds with millisecond precision.
func npt(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// trackIDOf extracts N from a SETUP URL ending in /trackID=N (in the path, or
// in the query as FFmpeg sends it), as gortsplib does; 0 when absent.
func trackIDOf(u *url.URL) int {
	for _, s := range []string{u.RawQuery, u.Path} {
		if i := strings.LastIndex(s, "/trackID="); i >= 0 {
			n, err := strconv.Atoi(s[i+len("/trackID="):])
			if err == nil && n >= 0 {
				return n
			}
			return -1
		}
	}
	return 0
}
