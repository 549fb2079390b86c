package node

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// StreamStatus is one recording as the admin API shows it (docs/api.md).
type StreamStatus struct {
	ID      string `json:"id"`   // SHA-256 of the key: the id in /api/v1/streams/{id}
	Key     string `json:"key"`  // canonical origin URL, never with credentials
	Path    string `json:"path"` // <origin-name>/<path> on this node; "" when no origin maps to it
	RTSPURL string `json:"rtsp_url,omitempty"`
	State   string `json:"state"` // filling, complete, partial, live
	Live    bool   `json:"live"`
	// Classification is "live" or "on-demand"; ClassificationReason says
	// which of the origin's ranges decided it.
	Classification       string    `json:"classification"`
	ClassificationReason string    `json:"classification_reason,omitempty"`
	Duration             float64   `json:"duration_seconds"`
	Bytes                uint64    `json:"bytes"`
	Packets              uint64    `json:"packets"`
	Segments             int       `json:"segments"`
	StoredBytes          int64     `json:"stored_bytes"`  // encoded bytes of the segments: what it takes in the store
	Source               string    `json:"source"`        // "origin" or the peer id it was filled from
	SourceKind           string    `json:"source_kind"`   // "origin" or "peer"
	Via                  []string  `json:"via,omitempty"` // live relay: peers the packets came through, origin-facing first
	Hits                 uint64    `json:"hits"`          // readers opened since it was stored
	Players              int       `json:"players"`       // readers open now
	Filling              bool      `json:"filling"`
	Pinned               bool      `json:"pinned"`
	Created              time.Time `json:"created"`
	LastAccess           time.Time `json:"last_access"`
	// Filler is the peer id of the stream's designated filler, the node
	// that opens its origin session for the mesh; FillerWhy says why
	// ("closest of 8 known members", "filler … unreachable: took over").
	// Empty without a mesh.
	Filler    string `json:"filler,omitempty"`
	FillerWhy string `json:"filler_why,omitempty"`

	Freshness *FreshnessStatus `json:"freshness,omitempty"` // admin_fresh.go

	// Fill is how far the fill in progress is; absent when none writes.
	Fill *FillProgress `json:"fill,omitempty"`
}

// FillProgress is a fill in progress as the admin API shows it
// (fill.Progress): what it stored, the media time done of the total, its
// rate and speed since it began, and when it should end.
type FillProgress struct {
	Bytes        uint64    `json:"bytes"`
	MediaDone    float64   `json:"media_done_seconds"`
	MediaTotal   float64   `json:"media_total_seconds"` // 0: live or unknown
	RateBits     float64   `json:"rate_bps"`            // bits per second since started
	Speed        float64   `json:"speed"`               // media seconds per second: 8 is 8x real time
	ETA          float64   `json:"eta_seconds"`         // 0: unknown
	Started      time.Time `json:"started"`
	RateLimitBit int64     `json:"rate_limit_bps,omitempty"` // the origin's rate_limit, when it has one
}

// fillProgress is key's fill in progress, nil when none writes.
func (a *adminServer) fillProgress(key string) *FillProgress {
	p, ok := a.n.fills.Progress(key)
	if !ok {
		return nil
	}
	fp := &FillProgress{Bytes: p.Bytes, MediaDone: p.Done.Seconds(), MediaTotal: p.Total.Seconds(),
		RateBits: p.Rate * 8, Speed: p.Speed, ETA: p.ETA.Seconds(), Started: p.Started}
	if o, _ := originForKey(a.n.cfg.Origins, key); o != nil {
		fp.RateLimitBit = int64(o.RateLimit)
	}
	return fp
}

func (a *adminServer) status(in store.Info, r *http.Request) StreamStatus {
	s := StreamStatus{
		ID: in.ID, Key: in.Key, Path: a.pathOf(in.Key), State: string(in.State), Live: in.Live,
		Duration: in.Duration.Seconds(), Bytes: in.Bytes, Packets: in.Packets, Segments: in.Segments, StoredBytes: in.StoredBytes,
		Source: in.Source, SourceKind: sourceKind(in.Source), Via: in.Via, Hits: in.Hits, Players: in.Readers,
		Filling: in.Filling, Pinned: in.Pinned, Created: in.Created, LastAccess: in.LastAccess,
		Classification: "on-demand", ClassificationReason: in.ClassReason,
	}
	if in.Live {
		s.Classification = "live"
	}
	fi := a.n.FillerOf(in.Key)
	s.Filler, s.FillerWhy = fi.ID, fi.Why
	s.Freshness = a.freshness(in)
	if in.Filling {
		s.Fill = a.fillProgress(in.Key)
	}
	if s.Path != "" {
		if _, port, err := net.SplitHostPort(a.n.RTSPAddr().String()); err == nil {
			s.RTSPURL = "rtsp://" + net.JoinHostPort(strings.Trim(rtspHost(r), "[]"), port) + "/" + s.Path
		}
	}
	return s
}

func sourceKind(source string) string {
	switch source {
	case store.SourceOrigin:
		return store.SourceOrigin
	case "":
		return ""
	}
	return "peer"
}

// pathOf maps a stream key back to the request path players use on this
// node: the configured origin whose canonical URL prefixes the key.
func (a *adminServer) pathOf(key string) string {
	if o, rest := originForKey(a.n.cfg.Origins, key); o != nil {
		return o.Name + "/" + rest
	}
	return ""
}

func (a *adminServer) listStreams(w http.ResponseWriter, r *http.Request) {
	infos, err := a.n.store.List()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "list recordings: %v", err)
		return
	}
	out := make([]StreamStatus, 0, len(infos))
	for _, in := range infos {
		out = append(out, a.status(in, r))
	}
	writeJSON(w, http.StatusOK, out)
}

// lookup finds the recording whose id is the {id} of the request; it
// answers 404 itself when there is none.
func (a *adminServer) lookup(w http.ResponseWriter, r *http.Request) (store.Info, bool) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusNotFound, "no stream %q: an id is 64 hex digits (see GET /api/v1/streams)", id)
		return store.Info{}, false
	}
	infos, err := a.n.store.List()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "list recordings: %v", err)
		return store.Info{}, false
	}
	for _, in := range infos {
		if in.ID == id {
			return in, true
		}
	}
	writeError(w, http.StatusNotFound, "no stream %s", id)
	return store.Info{}, false
}

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (a *adminServer) getStream(w http.ResponseWriter, r *http.Request) {
	if in, ok := a.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, a.status(in, r))
	}
}

// evictStream deletes a recording; refused while a fill writes it.
func (a *adminServer) evictStream(w http.ResponseWriter, r *http.Request) {
	in, ok := a.lookup(w, r)
	if !ok {
		return
	}
	if in.Filling {
		writeError(w, http.StatusConflict, "stream %s is filling; evict it once the fill has ended", in.ID)
		return
	}
	switch err := a.n.store.Delete(in.Key); {
	case errors.Is(err, store.ErrBusy):
		writeError(w, http.StatusConflict, "stream %s is filling; evict it once the fill has ended", in.ID)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no stream %s", in.ID)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "evict %s: %v", in.ID, err)
	default:
		a.log.Info("recording evicted by the admin api", "stream", in.Key)
		writeJSON(w, http.StatusOK, map[string]any{"id": in.ID, "key": in.Key, "evicted": true})
	}
}

func (a *adminServer) pinStream(pinned bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		in, ok := a.lookup(w, r)
		if !ok {
			return
		}
		switch err := a.n.store.SetPinned(in.Key, pinned); {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, "no stream %s", in.ID)
		case err != nil:
			writeError(w, http.StatusInternalServerError, "pin %s: %v", in.ID, err)
		default:
			in, err = a.n.store.Info(in.Key)
			if err != nil {
				writeError(w, http.StatusNotFound, "no stream %s", in.ID)
				return
			}
			writeJSON(w, http.StatusOK, a.status(in, r))
		}
	}
}
