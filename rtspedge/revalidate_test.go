package rtspedge

import "testing"

func TestSameDescription(t *testing.T) {
	const body = "v=0\r\ns=x\r\nt=0 0\r\na=range:npt=0-2.000\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"identical", "o=- 1 1 IN IP4 127.0.0.1\r\n" + body, "o=- 1 1 IN IP4 127.0.0.1\r\n" + body, true},
		{"line endings", "o=- 1 1 IN IP4 127.0.0.1\r\n" + body, "o=- 1 1 IN IP4 127.0.0.1\n" + body, true},
		{"new session id per DESCRIBE", "o=- 1 1 IN IP4 127.0.0.1\r\n" + body, "o=- 2 1 IN IP4 127.0.0.1\r\n" + body, true},
		{"new SSRC per session", "o=- 1 1 IN IP4 127.0.0.1\r\n" + body + "a=ssrc:1 cname:a\r\n", "o=- 1 1 IN IP4 127.0.0.1\r\n" + body + "a=ssrc:2 cname:b\r\n", true},
		{"version raised", "o=- 1 1 IN IP4 127.0.0.1\r\n" + body, "o=- 1 2 IN IP4 127.0.0.1\r\n" + body, false},
		{"body changed", "o=- 1 1 IN IP4 127.0.0.1\r\n" + body, "o=- 1 1 IN IP4 127.0.0.1\r\n" + body + "a=x\r\n", false},
		{"range changed", body, "v=0\r\ns=x\r\nt=0 0\r\na=range:npt=0-3.000\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n", false},
	} {
		if got := SameDescription([]byte(tc.a), []byte(tc.b)); got != tc.same {
			t.Errorf("%s: SameDescription = %v, want %v", tc.name, got, tc.same)
		}
	}
}
