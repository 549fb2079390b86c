package origin

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/rtspedge/setuphold"
)

// handler is the Origin seen as a gortsplib.ServerHandler.
type handler Origin

// rtpInfoKey carries our RTP-Info from OnPlay to OnResponse: gortsplib
// replaces RTP-Info on the first PLAY of a session with one computed from
// its own sender state, which knows nothing about seeks.
const rtpInfoKey = "X-Rtspmesh-Rtp-Info"

func (h *handler) entry(path string) (*entry, bool) {
	e, ok := (*Origin)(h).current(strings.Trim(path, "/"))
	if ok && e.live {
		h.mu.Lock()
		ended := e.ended
		h.mu.Unlock()
		if ended {
			return nil, false
		}
	}
	return e, ok
}

// OnSessionOpen implements gortsplib.ServerHandlerOnSessionOpen.
func (h *handler) OnSessionOpen(ctx *gortsplib.ServerHandlerOnSessionOpenCtx) {
	s := &session{o: (*Origin)(h)}
	if h.cfg.RandomRTPBase {
		s.seqOff, s.tsOff = uint16(rand.Uint32()), rand.Uint32()
	}
	ctx.Session.SetUserData(s)
	h.mu.Lock()
	h.sessions[ctx.Session] = s
	h.mu.Unlock()
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s, ok := ctx.Session.UserData().(*session)
	if !ok {
		return
	}
	h.mu.Lock()
	delete(h.sessions, ctx.Session)
	for c, ps := range h.pending {
		if ps == s {
			delete(h.pending, c)
		}
	}
	h.mu.Unlock()
	e := s.close()
	if e != nil {
		h.mu.Lock()
		e.open--
		h.mu.Unlock()
	}
	if n := s.lost.Load(); n > 0 && e != nil {
		h.log.Warn("session closed; its queue had dropped packets", "stream", e.path, "dropped", n)
	}
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError:
// a packet the session's queue had no room for (its client reads slower
// than the stream is sent, at a high Speed mostly) is dropped, as gortsplib
// does; the session logs the first, and how many when it closes (without
// this handler gortsplib prints a line per packet).
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	s, ok := ctx.Session.UserData().(*session)
	if !ok {
		return
	}
	if s.lost.Add(1) == 1 {
		h.log.Warn("a session's queue is full: its client reads slower than the stream is sent; packets dropped", "err", ctx.Error)
	}
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	e, ok := h.entry(ctx.Path)
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	h.mu.Lock()
	e.describes++
	h.mu.Unlock()
	res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{}, Body: e.sdp}
	(*Origin)(h).freshnessHeaders(e, res)
	if e.cacheControl != "" {
		res.Header["Cache-Control"] = base.HeaderValue{e.cacheControl}
	}
	if !e.modified.IsZero() {
		res.Header["Last-Modified"] = base.HeaderValue{e.modified.UTC().Format(http.TimeFormat)}
		if v := ctx.Request.Header["If-Modified-Since"]; len(v) > 0 {
			if since, err := http.ParseTime(v[0]); err == nil && !e.modified.After(since) {
				res.StatusCode, res.Body = base.StatusNotModified, nil
			}
		}
	}
	return res, nil, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s, ok := ctx.Session.UserData().(*session)
	if !ok {
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, nil
	}
	e, ok := h.entry(ctx.Path)
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	track := trackIDOf((*url.URL)(ctx.Request.URL))
	if track < 0 || track >= e.clip.Tracks() {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	st, err := s.setup(e, h.server, h.admit)
	if errors.Is(err, errTooManySessions) {
		return &base.Response{StatusCode: base.StatusNotEnoughBandwidth}, nil, nil
	}
	if err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil, err
	}
	res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{}}
	if e.cacheControl != "" {
		res.Header["Cache-Control"] = base.HeaderValue{e.cacheControl}
	}
	if v, ok := ctx.Request.Header["X-Rtp-Meta-Info"]; ok && len(v) > 0 && !h.cfg.DisableMetaInfo {
		if f, err := metainfo.ParseHeader(v[0]); err == nil {
			f = f.Intersect(supportedFields(e.clip.Desc.Medias[track])...)
			if !f.Has(metainfo.NameMD) {
				f = append(f, metainfo.Field{Name: metainfo.NameMD, ID: metainfo.NoID})
			}
			s.setFields(track, f)
			res.Header[metainfo.HeaderName] = base.HeaderValue{f.String()}
		}
	}
	return res, st, nil
}

// supportedFields are the meta-info fields sent for a track: ft only for video.
func supportedFields(m *description.Media) []string {
	if m.Type == description.MediaTypeVideo {
		return []string{metainfo.NameTT, metainfo.NameFT, metainfo.NamePN, metainfo.NameSQ, metainfo.NameMD}
	}
	return []string{metainfo.NameTT, metainfo.NamePN, metainfo.NameSQ, metainfo.NameMD}
}

// errTooManySessions: Config.MaxSessions sessions hold the path already.
var errTooManySessions = errors.New("too many sessions")

// admit counts a session that sets e up for the first time, or refuses it
// when Config.MaxSessions sessions hold e already.
func (h *handler) admit(e *entry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.MaxSessions > 0 && e.open >= h.cfg.MaxSessions {
		e.refused++
		h.log.Info("session refused", "stream", e.path, "open", e.open, "max_sessions", h.cfg.MaxSessions)
		return errTooManySessions
	}
	e.open++
	return nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay. The pacer starts in
// OnResponse, once gortsplib has made the session an active reader.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	s, ok := ctx.Session.UserData().(*session)
	if !ok || s.entry() == nil {
		return &base.Response{StatusCode: base.StatusSessionNotFound}, nil
	}
	if _, ok := ctx.Request.Header["X-Packet-Range"]; ok {
		return &base.Response{StatusCode: base.StatusNotImplemented}, nil
	}
	e := s.entry()
	req := playRequest{speed: 1}
	if !e.live {
		if v, ok := ctx.Request.Header["Range"]; ok && len(v) > 0 && !strings.Contains(v[0], "now") {
			var r headers.Range
			if err := r.Unmarshal(v); err != nil {
				return &base.Response{StatusCode: base.StatusBadRequest}, fmt.Errorf("range: %w", err)
			}
			n, ok := r.Value.(*headers.RangeNPT)
			if !ok {
				return &base.Response{StatusCode: base.StatusNotImplemented}, nil
			}
			if n.Start < 0 || n.Start >= e.clip.Duration {
				return &base.Response{StatusCode: base.StatusInvalidRange}, nil
			}
			req.seek, req.from = true, n.Start
		}
		if v, ok := ctx.Request.Header["Speed"]; ok && len(v) > 0 {
			sp, err := strconv.ParseFloat(strings.TrimSpace(v[0]), 64)
			if err == nil && sp > 0 {
				req.speed = min(max(sp, 0.1), h.cfg.MaxSpeed)
				req.speedAsked = true
			}
		}
	}
	p := s.prepare(req, time.Since(h.epoch))

	res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{}}
	if e.live {
		res.Header["Range"] = base.HeaderValue{"npt=" + npt(p.from) + "-"}
	} else {
		res.Header["Range"] = base.HeaderValue{"npt=" + npt(p.from) + "-" + npt(e.clip.Duration)}
	}
	if req.speedAsked {
		res.Header["Speed"] = base.HeaderValue{strconv.FormatFloat(req.speed, 'f', 3, 64)}
	}
	ri := s.rtpInfo(p, ctx.Request.URL, ctx.Session.SetuppedPath())
	res.Header["RTP-Info"] = ri
	res.Header[rtpInfoKey] = ri

	h.mu.Lock()
	h.pending[ctx.Conn] = s
	h.mu.Unlock()
	h.log.Debug("play", "stream", e.path, "from", p.from, "speed", p.speed, "live", e.live)
	return res, nil
}

// OnPause implements gortsplib.ServerHandlerOnPause.
func (h *handler) OnPause(ctx *gortsplib.ServerHandlerOnPauseCtx) (*base.Response, error) {
	if s, ok := ctx.Session.UserData().(*session); ok {
		s.pause(ctx.Session)
		h.log.Debug("pause", "stream", ctx.Path)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRequest implements gortsplib.ServerHandlerOnRequest: a GStreamer
// player's SETUP is answered at once (setuphold).
func (h *handler) OnRequest(_ *gortsplib.ServerConn, req *base.Request) {
	setuphold.Lift(req)
}

// OnResponse implements gortsplib.ServerHandlerOnResponse: it restores our
// RTP-Info and starts the pacer of a session whose PLAY succeeded.
func (h *handler) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	if ri, ok := res.Header[rtpInfoKey]; ok {
		delete(res.Header, rtpInfoKey)
		res.Header["RTP-Info"] = ri
	}
	h.mu.Lock()
	s := h.pending[sc]
	delete(h.pending, sc)
	h.mu.Unlock()
	if s != nil {
		s.start(res.StatusCode == base.StatusOK)
	}
}
