package node

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rtspmesh/rtspmesh/node/fill"
	"github.com/rtspmesh/rtspmesh/rtspedge"
	"github.com/rtspmesh/rtspmesh/store"
)

// PrefetchRequest is the body of POST /api/v1/prefetch.
type PrefetchRequest struct {
	Path string `json:"path"` // "<origin-name>/<path>[?query]", as a player would ask
}

// PrefetchAnswer says what the node does for a prefetch.
type PrefetchAnswer struct {
	Stream StreamStatus `json:"stream"`
	// Served is where the stream comes from: "local" (already stored),
	// "tail" (a fill was already running), "peer" or "origin" (a new fill).
	Served Served `json:"served"`
	// Source is the peer id or "origin" the recording is filled from.
	Source string `json:"source"`
}

// prefetchHandler starts a fill without a player and holds it, the way a
// player would, until it ends; the answer (202, or 200 when the stream is
// already complete) comes as soon as the fill has its first source.
func (a *adminServer) prefetchHandler(runCtx context.Context) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req PrefetchRequest
		if err := readJSON(w, r, &req); err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		if req.Path == "" {
			writeError(w, http.StatusBadRequest, `"path" is required: "<origin-name>/<path>"`)
			return
		}
		origin, originURL, key, err := mapPath(a.n.cfg.Origins, req.Path)
		if err != nil {
			writeError(w, resolveStatus(err), "%v", err)
			return
		}
		// The request's context bounds the wait for the first source; the
		// fill itself belongs to the node.
		freq := a.n.fillRequest(origin, originURL, key, "")
		freq.Prefetch = true // nobody plays it: it may pull ranges at once
		rec, err := a.n.fills.Open(r.Context(), freq)
		if err != nil {
			a.n.metrics.refused(err)
			a.log.Info("prefetch failed", "stream", key, "err", err)
			writeError(w, resolveStatus(err), "prefetch %s: %v", req.Path, err)
			return
		}
		m := rec.Manifest()
		if m.Live {
			rec.Release()
			writeError(w, http.StatusBadRequest, "%s is a live stream: nothing to prefetch", req.Path)
			return
		}
		a.n.metrics.prefetched(rec.Served())
		a.log.Info("prefetch start", "stream", key, "served", rec.Served(), "source", m.Source)
		code := http.StatusAccepted
		if rec.Done() == nil {
			rec.Release()
			code = http.StatusOK
		} else {
			a.n.background(runCtx, func(ctx context.Context) { a.hold(ctx, rec) })
		}
		in, err := rec.Store().Info(key)
		if err != nil {
			in = store.Info{Key: key, ID: store.StreamID(key), State: m.State, Source: m.Source}
		}
		writeJSON(w, code, PrefetchAnswer{Stream: a.status(in, r), Served: rec.Served(), Source: m.Source})
	}
}

// hold keeps a prefetch's fill alive (as its only "player") until it ends.
func (a *adminServer) hold(ctx context.Context, rec *fill.Recording) {
	start := time.Now()
	select {
	case <-rec.Done():
	case <-ctx.Done():
	}
	rec.Release()
	in, _ := rec.Store().Info(rec.Key())
	a.log.Info("prefetch end", "stream", rec.Key(), "state", in.State, "source", in.Source,
		"bytes", in.Bytes, "duration", time.Since(start).Round(time.Millisecond))
}

// resolveStatus is the HTTP answer for a resolve error, as rtspedge answers a player.
func resolveStatus(err error) int {
	switch {
	case errors.Is(err, rtspedge.ErrUnknownOrigin):
		return http.StatusNotFound
	case errors.Is(err, rtspedge.ErrBadPath):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, rtspedge.ErrOverLimit):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}
