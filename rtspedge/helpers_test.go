package rtspedge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

const samplePath = "sample.ts"

// startOrigin runs the built-in origin with the sample clip until the test
// ends (or until the returned stop is called).
func startOrigin(t testing.TB, cfg origin.Config) (*origin.Origin, func()) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Media == nil {
		cfg.Media = map[string][]byte{samplePath: origin.SampleClip()}
	}
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger()
	}
	o, err := origin.New(cfg)
	if err != nil {
		t.Fatalf("origin.New: %v", err)
	}
	stop := testkit.Run(t, "origin Run", o.Run)
	return o, stop
}

func originURL(o *origin.Origin, path string) string { return "rtsp://" + o.Addr() + "/" + path }

// newStore opens an in-memory store closed at the end of the test.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true, Logger: testkit.Logger()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// fill pulls url into a new recording key and finishes it; it returns the
// final manifest.
func fill(t testing.TB, st *store.Store, key, url string, req OriginRequest) store.Manifest {
	t.Helper()
	req.URL = url
	if req.Timeout == 0 {
		req.Timeout = 5 * time.Second
	}
	o, err := OpenOrigin(context.Background(), req)
	if err != nil {
		t.Fatalf("OpenOrigin: %v", err)
	}
	defer o.Close()
	m := o.Manifest()
	m.Key = key
	w, err := st.Create(m)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := o.Run(context.Background(), w); err != nil {
		_ = w.Finish(store.StatePartial)
		t.Fatalf("Run: %v", err)
	}
	if err := w.Finish(store.StateComplete); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	m, err = st.Manifest(key)
	if err != nil {
		t.Fatalf("Manifest: %v", err)
	}
	return m
}

// readAll returns every stored packet of key (copies).
func readAll(t testing.TB, st *store.Store, key string) []store.Packet {
	t.Helper()
	r, err := st.NewReader(key, 0)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	defer r.Close()
	var out []store.Packet
	for {
		p, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		p.RTP = append([]byte(nil), p.RTP...)
		out = append(out, p)
	}
}

// testRecordings is a Recordings over one store: a path maps to a key;
// a path not stored yet is filled from its origin URL (one fill per key,
// players tail it), like package node does.
type testRecordings struct {
	ctx     context.Context // of the test: ends fills
	st      *store.Store
	origins map[string]string // path → origin URL
	errs    map[string]error  // path → error to return

	mu      sync.Mutex
	filling map[string]chan struct{} // closed when the recording exists
	fillErr map[string]error
	opens   int
	closes  int
	wg      sync.WaitGroup
}

func newTestRecordings(t testing.TB, st *store.Store) *testRecordings {
	return &testRecordings{ctx: t.Context(), st: st, origins: map[string]string{}, errs: map[string]error{},
		filling: map[string]chan struct{}{}, fillErr: map[string]error{}}
}

type testRecording struct {
	r   *testRecordings
	key string
	m   store.Manifest
}

func (r *testRecording) Manifest() store.Manifest { return r.m }
func (r *testRecording) NewReader(from time.Duration) (*store.Reader, error) {
	return r.r.st.NewReader(r.key, from)
}
func (r *testRecording) Span() (first, last time.Duration, err error) {
	return r.r.st.Span(r.key)
}
func (r *testRecording) Close() {
	r.r.mu.Lock()
	r.r.closes++
	r.r.mu.Unlock()
}

func (r *testRecordings) Open(ctx context.Context, path string) (Recording, error) {
	if err := r.errs[path]; err != nil {
		return nil, err
	}
	key := path
	r.mu.Lock()
	ready, ok := r.filling[key]
	if !ok {
		if _, err := r.st.Manifest(key); err == nil {
			ready = make(chan struct{})
			close(ready)
		} else if url, ok := r.origins[path]; ok {
			ready = make(chan struct{})
			r.wg.Add(1)
			go r.fill(key, url, ready)
		} else {
			r.mu.Unlock()
			return nil, ErrUnknownOrigin
		}
		r.filling[key] = ready
	}
	r.mu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r.mu.Lock()
	err := r.fillErr[key]
	r.opens++
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m, err := r.st.Manifest(key)
	if err != nil {
		return nil, err
	}
	m.Segments = nil // as a node's Recording: a player needs no segment list
	return &testRecording{r: r, key: key, m: m}, nil
}

func (r *testRecordings) fill(key, url string, ready chan struct{}) {
	defer r.wg.Done()
	once := sync.OnceFunc(func() { close(ready) })
	defer once()
	o, err := OpenOrigin(r.ctx, OriginRequest{URL: url, Timeout: 5 * time.Second, AskMetaInfo: true})
	if err != nil {
		r.mu.Lock()
		r.fillErr[key] = err
		r.mu.Unlock()
		return
	}
	defer o.Close()
	m := o.Manifest()
	m.Key = key
	w, err := r.st.Create(m)
	if err != nil {
		r.mu.Lock()
		r.fillErr[key] = err
		r.mu.Unlock()
		return
	}
	once()
	if err := o.Run(r.ctx, w); err != nil {
		_ = w.Finish(store.StatePartial)
		return
	}
	_ = w.Finish(store.StateComplete)
}

// startServer runs a Server until the test ends.
func startServer(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger()
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if tr, ok := cfg.Recordings.(*testRecordings); ok {
		t.Cleanup(tr.wg.Wait) // registered first: runs after the server stopped
	}
	// The label marks every goroutine of the server in CPU profiles
	// (go tool pprof -tagfocus side=server).
	testkit.Run(t, "server Run", func(ctx context.Context) (err error) {
		pprof.Do(ctx, pprof.Labels("side", "server"), func(ctx context.Context) { err = s.Run(ctx) })
		return err
	})
	return s
}

func serverURL(s *Server, path string) string { return "rtsp://" + s.Addr().String() + "/" + path }

// ffprobeStreams lists the streams ffprobe sees: codec type, name, and for
// video the size, for audio the rate and channels.
func ffprobeStreams(t testing.TB, ctx context.Context, url string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "ffprobe", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_type,codec_name,profile,width,height,sample_rate,channels",
		"-of", "compact", url)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, stderr.String())
	}
	return out.String()
}
