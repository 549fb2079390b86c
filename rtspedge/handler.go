package rtspedge

import (
	"log/slog"
	"sync"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"

	"github.com/rtspmesh/rtspmesh/rtspedge/setuphold"
	"github.com/rtspmesh/rtspmesh/store"
)

// handler implements gortsplib's server callbacks for Server (kept off
// Server's exported method set).
type handler Server

// connState is what the server keeps per RTSP connection: recordings opened
// by DESCRIBE until a SETUP adopts them, and the RTP-Info a PLAY answer must
// carry (gortsplib writes its own, which knows nothing of the replay).
type connState struct {
	id        uint64 // Client.Conn
	mu        sync.Mutex
	described map[string]*described
	method    base.Method
	rtpInfo   base.HeaderValue
	nonce     string // player authentication's, made on first use
}

// authNonce returns the connection's Digest nonce.
func (cs *connState) authNonce() string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.nonce == "" {
		cs.nonce = newNonce()
	}
	return cs.nonce
}

// described is a recording opened by DESCRIBE, with its player description.
type described struct {
	rec  Recording
	m    store.Manifest
	sdp  []byte
	desc *description.Session
}

func (cs *connState) take(path string) *described {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	d := cs.described[path]
	delete(cs.described, path)
	return d
}

func (cs *connState) put(path string, d *described) {
	cs.mu.Lock()
	old := cs.described[path]
	if cs.described == nil {
		cs.described = make(map[string]*described)
	}
	cs.described[path] = d
	cs.mu.Unlock()
	if old != nil {
		old.rec.Close()
	}
}

// close releases recordings no SETUP adopted.
func (cs *connState) close() {
	cs.mu.Lock()
	ds := cs.described
	cs.described = nil
	cs.mu.Unlock()
	for _, d := range ds {
		d.rec.Close()
	}
}

func (h *handler) server() *Server { return (*Server)(h) }

func (h *handler) player(ss *gortsplib.ServerSession) *player {
	s := h.server()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.players[ss]
}

func (h *handler) conn(sc *gortsplib.ServerConn) *connState {
	s := h.server()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.conns[sc]
	if cs == nil {
		cs = &connState{id: connIDs.Add(1)}
		s.conns[sc] = cs
	}
	return cs
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	h.conn(ctx.Conn)
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	s := h.server()
	s.mu.Lock()
	cs := s.conns[ctx.Conn]
	delete(s.conns, ctx.Conn)
	s.mu.Unlock()
	if cs != nil {
		cs.close()
	}
	s.log.Debug("rtsp connection closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "err", ctx.Error)
}

// OnRequest implements gortsplib.ServerHandlerOnRequest.
func (h *handler) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	setuphold.Lift(req)
	if gc := guardOf(sc.NetConn()); gc != nil {
		gc.requestDone()
	}
	cs := h.conn(sc)
	cs.mu.Lock()
	cs.method = req.Method
	cs.rtpInfo = nil
	cs.mu.Unlock()
}

// OnResponse implements gortsplib.ServerHandlerOnResponse: a PLAY answer
// carries the replay's RTP-Info.
func (h *handler) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	cs := h.conn(sc)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.method == base.Play && res.StatusCode == base.StatusOK && cs.rtpInfo != nil {
		res.Header["RTP-Info"] = cs.rtpInfo
	}
	cs.rtpInfo = nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s := h.server()
	path := recordingPath(ctx.Path, ctx.Query)
	cs := h.conn(ctx.Conn)
	if res := s.authorize(ctx.Request, path, cs.authNonce()); res != nil {
		return res, nil, nil
	}
	d, res := s.open(clientOf(ctx.Conn, cs.id), path, ctx.Request)
	if d == nil {
		return res, nil, nil
	}
	cs.put(path, d)
	res = &base.Response{StatusCode: base.StatusOK, Header: base.Header{}, Body: d.sdp}
	if w, ok := d.rec.(Warner); ok && w.Warning() != "" {
		res.Header["Warning"] = base.HeaderValue{w.Warning()}
	}
	return res, nil, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s := h.server()
	if !s.allows(ctx.Transport) {
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
	}
	path := recordingPath(ctx.Path, ctx.Query)
	if res := s.authorize(ctx.Request, path, h.conn(ctx.Conn).authNonce()); res != nil {
		return res, nil, nil
	}
	if p := h.player(ctx.Session); p != nil {
		if p.path != path {
			return &base.Response{StatusCode: base.StatusBadRequest}, nil, nil
		}
		return p.setupOK(), p.stream, nil
	}
	addr := addrKey(ctx.Conn.NetConn().RemoteAddr())
	if !s.reserveSession(ctx.Session, addr) {
		return &base.Response{StatusCode: base.StatusNotEnoughBandwidth}, nil, nil
	}
	cs := h.conn(ctx.Conn)
	d := cs.take(path)
	if d == nil {
		var res *base.Response
		if d, res = s.open(clientOf(ctx.Conn, cs.id), path, ctx.Request); d == nil {
			s.releaseSession(ctx.Session)
			return res, nil, nil
		}
	}
	p, err := newPlayer(s, ctx.Session, path, d)
	if err != nil {
		d.rec.Close()
		s.releaseSession(ctx.Session)
		s.log.Error("set up player", "path", path, "err", err)
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, nil
	}
	s.mu.Lock()
	s.players[ctx.Session] = p
	s.mu.Unlock()
	return p.setupOK(), p.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	p := h.player(ctx.Session)
	if p == nil {
		return &base.Response{StatusCode: base.StatusSessionNotFound}, nil
	}
	res := p.play(ctx)
	if res.StatusCode == base.StatusOK {
		cs := h.conn(ctx.Conn)
		cs.mu.Lock()
		cs.rtpInfo = res.Header["RTP-Info"]
		cs.mu.Unlock()
		if gc := guardOf(ctx.Conn.NetConn()); gc != nil {
			gc.setPlaying(true)
			s := h.server()
			s.mu.Lock()
			s.playConn[ctx.Session] = gc
			s.mu.Unlock()
		}
	}
	return res, nil
}

// OnPause implements gortsplib.ServerHandlerOnPause.
func (h *handler) OnPause(ctx *gortsplib.ServerHandlerOnPauseCtx) (*base.Response, error) {
	p := h.player(ctx.Session)
	if p == nil {
		return &base.Response{StatusCode: base.StatusSessionNotFound}, nil
	}
	p.pause()
	h.server().stopPlaying(ctx.Session)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s := h.server()
	s.stopPlaying(ctx.Session)
	s.releaseSession(ctx.Session)
	s.mu.Lock()
	p := s.players[ctx.Session]
	delete(s.players, ctx.Session)
	s.mu.Unlock()
	if p != nil {
		p.close()
		s.log.Debug("player session closed", "path", p.path, "err", ctx.Error)
	}
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError
// (streams are never written to; the handler keeps gortsplib from logging).
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.server().log.Debug("stream write error", "err", ctx.Error)
}

// OnPacketsLost implements gortsplib.ServerHandlerOnPacketsLost.
func (h *handler) OnPacketsLost(*gortsplib.ServerHandlerOnPacketsLostCtx) {}

// OnDecodeError implements gortsplib.ServerHandlerOnDecodeError.
func (h *handler) OnDecodeError(*gortsplib.ServerHandlerOnDecodeErrorCtx) {}

// open resolves path through Recordings for client and prepares its player
// description; on failure it returns the answer for the player. req is the
// player's request: its Cache-Control only-if-cached reaches Recordings.Open
// (OnlyIfCached).
func (s *Server) open(client Client, path string, req *base.Request) (*described, *base.Response) {
	rec, err := s.cfg.Recordings.Open(requestContext(WithClient(s.ctx, client), req), path)
	if err != nil {
		res := refusal(err)
		lvl := slog.LevelInfo
		if res.StatusCode >= base.StatusInternalServerError {
			lvl = slog.LevelWarn // the node or its origin failed, not the player
		}
		s.log.Log(s.ctx, lvl, "player request refused", "path", path, "status", int(res.StatusCode),
			"reason", reasonPhrase(res), "err", err)
		return nil, res
	}
	m := rec.Manifest()
	// A player needs the description, not the segment list: each kept a
	// copy of it, 232 bytes a segment (a 2 min live window of 100 ms
	// segments: 280 KB a player; an hour of VOD: 830 KB).
	m.Segments = nil
	sdp, desc, err := playerDescription(m)
	if err != nil {
		rec.Close()
		s.log.Error("stored description unusable", "path", path, "err", err)
		return nil, refusal(err)
	}
	return &described{rec: rec, m: m, sdp: sdp, desc: desc}, nil
}
