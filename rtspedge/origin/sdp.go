package origin

import (
	"bytes"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
)

// describe renders the SDP of a clip: gortsplib's controls (trackID=N, which
// SETUP resolves against the session stream) plus a session-level range,
// npt=0-<duration> for VOD and npt=now- for live, and the clip's bitrate
// (b=AS, as Darwin and Wowza declare it) so that a client can pick a Speed
// its bandwidth cap allows.
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
	if as := c.bitrateKbit(); as > 0 {
		// b= goes before t= (RFC 4566 §5): strict parsers refuse it after.
		if t := bytes.Index(b, []byte("\r\nt=")); t >= 0 {
			bw := "b=AS:" + strconv.FormatInt(as, 10) + "\r\n"
			b = append(b[:t+2:t+2], append([]byte(bw), b[t+2:]...)...)
		}
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

// bitrateKbit is the clip's bitrate in kbit/s, rounded up, as RFC 4566's
// b=AS counts it: RTP packets with their IP and UDP headers (28 bytes).
// Zero for a clip without duration.
func (c *Clip) bitrateKbit() int64 {
	if c.Duration <= 0 {
		return 0
	}
	var bytes int64
	for _, p := range c.Packets {
		bytes += int64(len(p.RTP)) + 28
	}
	return int64(math.Ceil(float64(bytes) * 8 / c.Duration.Seconds() / 1000))
}
