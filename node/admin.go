package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rtspmesh/rtspmesh/node/dashboard"
)

// adminServer is the node's admin HTTP API (admin.listen): JSON endpoints
// under /api/v1 (docs/api.md), /metrics, /healthz, /readyz and the
// dashboard at /. With admin.token set, everything but the dashboard's
// static files and the health probes needs "Authorization: Bearer <token>".
// Requests for another Host and cross-origin requests that change state are
// refused first (admin_guard.go).
type adminServer struct {
	n       *Node
	log     *slog.Logger
	ln      net.Listener // nil when admin.listen is empty
	token   string
	started time.Time
	hosts   *hostGuard   // Host headers that name this listener (admin_guard.go)
	refused atomic.Int64 // requests refused for their Host or as cross-origin

	mu        sync.Mutex
	providers map[string]map[string]bool // peer id → stream keys it provided in our lookups

	catalogues catalogues // what each peer holds, for GET /api/v1/peers (admin_mesh.go)
}

// newAdminServer makes the node's metrics (New calls it once every other
// component exists) and binds admin.listen, so AdminAddr is known before
// Run. An empty address disables the HTTP side; metrics are still counted.
func newAdminServer(n *Node, logger *slog.Logger) (*adminServer, error) {
	a := &adminServer{
		n:         n,
		log:       logger.With("component", "admin"),
		token:     n.cfg.Admin.Token,
		started:   time.Now(),
		providers: make(map[string]map[string]bool),
	}
	n.metrics = newMetrics(n)
	n.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rtspmesh_admin_refused_total",
		Help: "Admin API requests refused for a Host that does not name the API (DNS rebinding) or as cross-origin.",
	}, func() float64 { return float64(a.refused.Load()) }))
	if n.cfg.Admin.Listen == "" {
		return a, nil
	}
	ln, err := net.Listen("tcp", n.cfg.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin api: %w", err) // net says "listen tcp <addr>: …"
	}
	a.ln = ln
	a.hosts = newHostGuard(ln.Addr(), n.cfg.Admin.Hosts)
	return a, nil
}

// run serves until ctx ends, then shuts the server down, letting requests
// in flight finish for a few seconds.
func (a *adminServer) run(ctx context.Context) error {
	if a.ln == nil {
		<-ctx.Done()
		return nil
	}
	srv := &http.Server{
		Handler:           a.routes(ctx),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(a.ln) }()
	a.log.Info("admin api listening", "addr", a.ln.Addr().String(), "token", a.token != "")
	select {
	case err := <-errc:
		return fmt.Errorf("admin api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin api: %w", err)
	}
	return nil
}

// routes builds the handler. runCtx is Run's context: prefetches outlive
// their request and stop with the node.
func (a *adminServer) routes(runCtx context.Context) http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, a.authorized(h))
	}
	api("GET /api/v1/streams", a.listStreams)
	api("GET /api/v1/streams/{id}", a.getStream)
	api("DELETE /api/v1/streams/{id}", a.evictStream)
	api("POST /api/v1/streams/{id}/pin", a.pinStream(true))
	api("DELETE /api/v1/streams/{id}/pin", a.pinStream(false))
	api("POST /api/v1/prefetch", a.prefetchHandler(runCtx))
	api("GET /api/v1/peers", a.listPeers)
	api("GET /api/v1/node", a.nodeInfo)
	mux.Handle("GET /metrics", a.authorized(promhttp.HandlerFor(a.n.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}).ServeHTTP))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	// Method-less patterns catch the other methods of known paths: 405 in JSON.
	for _, p := range []string{"/api/v1/streams", "/api/v1/streams/{id}", "/api/v1/streams/{id}/pin",
		"/api/v1/prefetch", "/api/v1/peers", "/api/v1/node", "/metrics", "/healthz", "/readyz"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
		})
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no endpoint %s %s (see docs/api.md)", r.Method, r.URL.Path)
	})
	page := dashboard.Handler()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
			return
		}
		page.ServeHTTP(w, r)
	})
	return a.recovered(a.guarded(mux))
}

// authorized requires the bearer token when one is configured.
func (a *adminServer) authorized(h http.HandlerFunc) http.Handler {
	if a.token == "" {
		return h
	}
	want := []byte("Bearer " + a.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rtspmesh"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (admin.token)")
			return
		}
		h(w, r)
	})
}

// recovered turns a handler panic into a 500 with a log line: one bad
// request never takes the node down.
func (a *adminServer) recovered(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("admin handler panic", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

func (a *adminServer) readyz(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-a.n.ready:
	default:
		writeError(w, http.StatusServiceUnavailable, "starting")
		return
	}
	if _, err := a.n.store.List(); err != nil {
		writeError(w, http.StatusServiceUnavailable, "store: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...)})
}

// readJSON decodes a small JSON body into v, refusing unknown fields and
// trailing data; the error is the message for a 400.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("bad JSON body: more than one value")
	}
	return nil
}

// AdminAddr is the admin API's bound address; nil when admin.listen is empty.
func (n *Node) AdminAddr() net.Addr {
	if n.admin == nil || n.admin.ln == nil {
		return nil
	}
	return n.admin.ln.Addr()
}

// rtspHost is the host players should use for this node as seen by an HTTP
// client: the host it reached the admin API with.
func rtspHost(r *http.Request) string {
	h := r.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if h == "" {
		h = "127.0.0.1"
	}
	return h
}
