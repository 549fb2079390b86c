package node

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/rtspmesh/rtspmesh/rtspedge"
)

func TestCanonicalKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"rtsp://Media.Example.COM/vod/a.ts", "rtsp://media.example.com:554/vod/a.ts"},
		{"RTSP://media.example.com:554/vod/a.ts", "rtsp://media.example.com:554/vod/a.ts"},
		{"rtsps://media.example.com/x", "rtsps://media.example.com:322/x"},
		{"rtsp://user:pass@media.example.com:8554/x", "rtsp://media.example.com:8554/x"},
		{"rtsp://h/a/./b/../c//d/", "rtsp://h:554/a/c/d"},
		{"rtsp://h/a/%2E%2E/b", "rtsp://h:554/b"},
		{"rtsp://h/%61%62c%7e", "rtsp://h:554/abc~"},
		{"rtsp://h/a%2fb", "rtsp://h:554/a%2Fb"},
		{"rtsp://h/a b/é", "rtsp://h:554/a%20b/%C3%A9"},
		{"rtsp://h/a%20b", "rtsp://h:554/a%20b"},
		{"rtsp://h/x?b=2&a=1&a=0", "rtsp://h:554/x?a=1&a=0&b=2"},
		{"rtsp://h/x?", "rtsp://h:554/x"},
		{"rtsp://h/x#frag", "rtsp://h:554/x"},
		{"rtsp://h", "rtsp://h:554/"},
		{"rtsp://h:0554/x", "rtsp://h:554/x"},
		{"rtsp://host./x", "rtsp://host:554/x"},
		{"rtsp://[2001:DB8::1]/x", "rtsp://[2001:db8::1]:554/x"},
		{"rtsp://[::ffff:10.0.0.1]:9/x", "rtsp://10.0.0.1:9/x"},
		{"rtsp://10.0.0.1/x", "rtsp://10.0.0.1:554/x"},
	} {
		got, err := CanonicalKey(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if again, err := CanonicalKey(got); err != nil || again != got {
			t.Errorf("CanonicalKey is not idempotent on %q: %q, %v", got, again, err)
		}
	}
	for _, in := range []string{
		"http://h/x", "rtsp:h/x", "rtsp:///x", "rtsp://h:99999/x", "rtsp://h:0/x", "rtsp://h/%zz",
		"rtsp://h/x?a=%zz", "rtsp://[fe80::1%25eth0]/x", "rtsp://bad_host!/x", "rtsp://u:secret@h:bad/x", "",
	} {
		_, err := CanonicalKey(in)
		if err == nil {
			t.Errorf("CanonicalKey(%q) accepted", in)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("CanonicalKey(%q) error leaks the password: %v", in, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"rtsp://h/x":                      "rtsp://h/x",
		"rtsp://u:p@h:554/x":              "rtsp://h:554/x",
		"rtsp://u@h/x?a=b@c":              "rtsp://h/x?a=b@c",
		"rtsp://u:p/a#ss@h/x":             "rtsp://h/x",
		"rtsp://u:p%40x@h/x":              "rtsp://h/x",
		"u:p@h/x":                         "h/x",
		"not a url":                       "not a url",
		"rtsp://u:p@h/x@y":                "rtsp://y",
		"":                                "",
		"rtsp://user:pass@[::1]:8554/x?y": "rtsp://[::1]:8554/x?y",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

var testOrigins = []Origin{
	{Name: "vod", URL: "rtsp://media.example.com:8554/library/"},
	{Name: "cams", URL: "rtsp://viewer:s3cret@cameras.example.com/Streaming?token=abc", PassQuery: true},
	{Name: "sec", URL: "rtsps://secure.example.com", Username: "alice", Password: "p@ss word"},
}

func TestMapPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, url, key string }{
		{"vod/films/a.ts", "rtsp://media.example.com:8554/library/films/a.ts", "rtsp://media.example.com:8554/library/films/a.ts"},
		{"/vod/a.ts", "rtsp://media.example.com:8554/library/a.ts", "rtsp://media.example.com:8554/library/a.ts"},
		// Without pass_query the query is dropped: cache-busting ?cb=N is one stream.
		{"vod/a b.ts?start=1&b=2", "rtsp://media.example.com:8554/library/a%20b.ts",
			"rtsp://media.example.com:8554/library/a%20b.ts"},
		{"vod/a.ts?cb=17", "rtsp://media.example.com:8554/library/a.ts", "rtsp://media.example.com:8554/library/a.ts"},
		{"cams/1?b=2&a=1", "rtsp://viewer:s3cret@cameras.example.com/Streaming/1?token=abc&a=1&b=2",
			"rtsp://cameras.example.com:554/Streaming/1?a=1&b=2&token=abc"},
		{"vod/a%20b.ts", "rtsp://media.example.com:8554/library/a%20b.ts", "rtsp://media.example.com:8554/library/a%20b.ts"},
		{"cams/Channels/101", "rtsp://viewer:s3cret@cameras.example.com/Streaming/Channels/101?token=abc",
			"rtsp://cameras.example.com:554/Streaming/Channels/101?token=abc"},
		{"cams/1?x=y", "rtsp://viewer:s3cret@cameras.example.com/Streaming/1?token=abc&x=y",
			"rtsp://cameras.example.com:554/Streaming/1?token=abc&x=y"},
		{"sec/live/x", "rtsps://alice:p%40ss%20word@secure.example.com/live/x", "rtsps://secure.example.com:322/live/x"},
	} {
		u, key, err := MapPath(testOrigins, tc.in)
		if err != nil || u != tc.url || key != tc.key {
			t.Errorf("MapPath(%q) =\n  %q, %q, %v\nwant\n  %q, %q", tc.in, u, key, err, tc.url, tc.key)
		}
	}
}

func TestMapPathRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"nope/x", rtspedge.ErrUnknownOrigin},
		{"VOD/x", rtspedge.ErrUnknownOrigin},
		{"vod.evil/x", rtspedge.ErrUnknownOrigin},
		{"", rtspedge.ErrBadPath},
		{"/", rtspedge.ErrBadPath},
		{"vod", rtspedge.ErrBadPath},
		{"vod/", rtspedge.ErrBadPath},
		{"vod/../cams/x", rtspedge.ErrBadPath},
		{"vod/a/../../x", rtspedge.ErrBadPath},
		{"../vod/x", rtspedge.ErrBadPath},
		{"vod/%2e%2e/x", rtspedge.ErrBadPath},
		{"vod/%2E%2e/%2E%2E/etc", rtspedge.ErrBadPath},
		{"vod/a%2fb", rtspedge.ErrBadPath},
		{"vod/a%2Fb", rtspedge.ErrBadPath},
		{"vod/..%2f..%2fx", rtspedge.ErrBadPath},
		{"vod/a\\b", rtspedge.ErrBadPath},
		{"vod/a%5cb", rtspedge.ErrBadPath},
		{"vod//x", rtspedge.ErrBadPath},
		{"vod/./x", rtspedge.ErrBadPath},
		{"vod/a%00b", rtspedge.ErrBadPath},
		{"vod/a%0d%0aInjected: 1", rtspedge.ErrBadPath},
		{"vod/%zz", rtspedge.ErrBadPath},
		{"vod/rtsp://evil.example.com/x", rtspedge.ErrBadPath},
		{"vod/rtsp%3A%2F%2Fevil/x", rtspedge.ErrBadPath},
		{"rtsp://evil.example.com/x", rtspedge.ErrBadPath},
		{"vod/x#frag", rtspedge.ErrBadPath},
		{"vod/x?a=%zz", rtspedge.ErrBadPath},
	} {
		_, _, err := MapPath(testOrigins, tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("MapPath(%q): got %v, want %v", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("MapPath(%q) error leaks a password: %v", tc.in, err)
		}
	}
}

// FuzzMapPath: never panics; a mapped URL stays on its origin's host and
// under its path; the key carries no credentials and is canonical.
func FuzzMapPath(f *testing.F) {
	for _, s := range []string{"vod/a.ts", "cams/1?x=y", "vod/../x", "vod/%2e%2e/x", "vod/a%2fb",
		"sec/x", "vod/rtsp://evil/x", "vod/a b/é?z=1&a=2", "vod/@evil.com/x", "vod/%40evil.com:80/x"} {
		f.Add(s)
	}
	hosts := map[string]*url.URL{}
	for _, o := range testOrigins {
		u, err := url.Parse(o.URL)
		if err != nil {
			f.Fatal(err)
		}
		hosts[o.Name] = u
	}
	f.Fuzz(func(t *testing.T, in string) {
		dial, key, err := MapPath(testOrigins, in)
		if err != nil {
			if !errors.Is(err, rtspedge.ErrBadPath) && !errors.Is(err, rtspedge.ErrUnknownOrigin) {
				t.Fatalf("MapPath(%q): error wraps neither sentinel: %v", in, err)
			}
			return
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(in, "/"), "/")
		origin := hosts[name]
		u, err := url.Parse(dial)
		if err != nil {
			t.Fatalf("MapPath(%q) = %q: does not parse: %v", in, dial, err)
		}
		if origin == nil || u.Host != origin.Host || u.Scheme != origin.Scheme {
			t.Fatalf("MapPath(%q) = %q: left origin %q", in, dial, name)
		}
		if !strings.HasPrefix(u.Path, strings.TrimSuffix(origin.Path, "/")+"/") {
			t.Fatalf("MapPath(%q) = %q: escaped the origin path %q", in, dial, origin.Path)
		}
		if k, err := url.Parse(key); err != nil || k.User != nil || k.Host != u.Hostname()+":"+portOr(u, "554", "322") ||
			strings.Contains(key, "s3cret") {
			t.Fatalf("MapPath(%q): key %q carries credentials", in, key)
		}
		if again, err := CanonicalKey(key); err != nil || again != key {
			t.Fatalf("MapPath(%q): key %q is not canonical (%q, %v)", in, key, again, err)
		}
	})
}

// FuzzCanonicalKey: never panics, and a key is its own canonical form.
func FuzzCanonicalKey(f *testing.F) {
	for _, s := range []string{"rtsp://h/x", "rtsps://U:P@H:322/a/../b?z=1&a=2#f", "rtsp://[::1]/%2e",
		"rtsp://h/a%2Fb", "rtsp://h/é?q=a+b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		key, err := CanonicalKey(in)
		if err != nil {
			return
		}
		again, err := CanonicalKey(key)
		if err != nil || again != key {
			t.Fatalf("CanonicalKey(%q) = %q, but CanonicalKey(%q) = %q, %v", in, key, key, again, err)
		}
		u, _ := url.Parse(key)
		if u.User != nil {
			t.Fatalf("CanonicalKey(%q) = %q keeps user info", in, key)
		}
	})
}

func portOr(u *url.URL, rtsp, rtsps string) string {
	switch {
	case u.Port() != "":
		return u.Port()
	case u.Scheme == "rtsps":
		return rtsps
	}
	return rtsp
}
