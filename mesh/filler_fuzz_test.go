package mesh

import (
	"bytes"
	"testing"
)

// FuzzFillerRequest: the filler protocol's request decoder never accepts a
// key the protocol refuses, and what it accepts re-encodes to the input's
// prefix. Seeds are also in testdata/fuzz/FuzzFillerRequest.
func FuzzFillerRequest(f *testing.F) {
	f.Add(appendFillerRequest(nil, "rtsp://origin.test:554/a.mp4", false))
	f.Add(appendFillerRequest(nil, "rtsp://origin.test:554/a.mp4", true))
	f.Add([]byte{fillerVersion, 0, 0})
	f.Add([]byte{1, 0, 1, 'a'})
	f.Add([]byte{fillerVersion, 0, 8, 'r', 't', 's', 'p', ':', '/', '/', 'x', 0x80})
	f.Add([]byte{fillerVersion, 0xff, 0xff, 'a'})
	f.Add(appendFillerRequest(nil, "rtsp://u:p@h:554/x", false))
	f.Fuzz(func(t *testing.T, b []byte) {
		key, unwatched, err := readFillerRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if checkKey(key) != nil {
			t.Fatalf("accepted a bad key %q", key)
		}
		if enc := appendFillerRequest(nil, key, unwatched); !bytes.HasPrefix(b, enc) {
			t.Fatalf("re-encoding %x is not the input's prefix %x", enc, b)
		}
	})
}

// FuzzFillerStatus: every status byte maps to nil (0 only) or an error.
func FuzzFillerStatus(f *testing.F) {
	for _, st := range []byte{fillerOK, fillerNotConfigured, fillerFailed, fillerBadRequest, fillerBusy, 200} {
		f.Add(st)
	}
	f.Fuzz(func(t *testing.T, st byte) {
		if err := fillerErr(st, "accepted"); (err == nil) != (st == fillerOK) {
			t.Fatalf("status %d: %v", st, err)
		}
	})
}
