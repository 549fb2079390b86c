package node

import (
	"strings"
	"testing"
	"time"
)

// TestFillerKeysValidate: mesh.filler_reach and origins[].max_sessions are
// checked, and their errors name the key.
func TestFillerKeysValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key  string
		edit func(c *Config)
	}{
		{"mesh.filler_reach", func(c *Config) { c.Mesh.FillerReach = 0 }},
		{"mesh.filler_reach", func(c *Config) { c.Mesh.FillerReach = Duration(time.Minute) }},
		{"origins[0] (cams).max_sessions", func(c *Config) { c.Origins[0].MaxSessions = -1 }},
	} {
		c := validConfig(t)
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+": ") {
			t.Fatalf("%s: %v", tc.key, err)
		}
	}
	c := validConfig(t)
	c.Origins[0].MaxSessions = 1
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDialableOrigin: a key maps back to the configured origin that makes
// it, with its credentials; a key of no configured origin maps to none.
func TestDialableOrigin(t *testing.T) {
	t.Parallel()
	origins := []Origin{
		{Name: "cams", URL: "rtsp://cam.example:554/Streaming", Username: "u", Password: "secret"},
		{Name: "vod", URL: "rtsp://media.example/"},
	}
	for _, path := range []string{"cams/101", "vod/a%20b.ts", "vod/dir/x.mp4?track=2"} {
		url, key, err := MapPath(origins, path)
		if err != nil {
			t.Fatal(err)
		}
		o, got, ok := dialableOrigin(origins, key)
		if !ok || got != url || o.Name != strings.Split(path, "/")[0] {
			t.Fatalf("%s (key %s): %q %+v %v, want %q", path, key, got, o, ok, url)
		}
	}
	for _, key := range []string{"rtsp://other.example/x", "rtsp://cam.example/Streaming/101", "rtsp://cam.example:554/Streamingx/1", "rtsp://cam.example:554/Streaming/../x"} {
		if _, _, ok := dialableOrigin(origins, key); ok {
			t.Fatalf("%s mapped to a configured origin", key)
		}
	}
}
