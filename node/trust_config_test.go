package node

import "testing"

func TestPeerAccessDefaults(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		o    Origin
		want bool
	}{
		{Origin{URL: "rtsp://cam/x"}, false},
		{Origin{URL: "rtsp://u:p@cam/x"}, true},
		{Origin{URL: "rtsp://cam/x", Username: "u", Password: "p"}, true},
		{Origin{URL: "rtsp://u:p@cam/x", PeerAccess: PeerAccessAll}, false},
		{Origin{URL: "rtsp://cam/x", PeerAccess: PeerAccessTrusted}, true},
	} {
		if got := c.o.peersTrustedOnly(); got != c.want {
			t.Errorf("%+v: trusted only %v, want %v", c.o, got, c.want)
		}
	}
	n := &Node{cfg: Config{Origins: []Origin{{Name: "cams", URL: "rtsp://viewer:pw@cam.example.com/live"}, {Name: "vod", URL: "rtsp://media.example.com/v"}}}}
	for key, want := range map[string]bool{
		"rtsp://cam.example.com:554/live/1": true,
		"rtsp://cam.example.com:554/lively": false,
		"rtsp://media.example.com:554/v/a":  false,
	} {
		if got := n.peersTrustedOnly(key); got != want {
			t.Errorf("%s: trusted only %v, want %v", key, got, want)
		}
	}
}
