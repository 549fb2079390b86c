package rtspedge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/store"
)

// metaInfoAsk is what a SETUP asks an origin for (DESIGN.md §1).
const metaInfoAsk = "tt;ft;pn;md"

// DefaultOriginTimeout bounds connecting, each request, and silence while
// playing when OriginRequest.Timeout is zero.
const DefaultOriginTimeout = 10 * time.Second

// OriginRequest says which origin stream to pull and how.
type OriginRequest struct {
	// URL of the stream at the origin (rtsp:// or rtsps://). It may carry
	// user:password, which is used to authenticate and never logged or put
	// into an error.
	URL string
	// Timeout bounds opening the session (connect, DESCRIBE, SETUP) as a
	// whole, each later request, and silence of the origin while playing.
	// It defaults to 10s.
	Timeout time.Duration
	// Logger receives session-level events; nothing is logged per packet.
	// It defaults to discarding.
	Logger *slog.Logger
	// AskMetaInfo asks the origin for x-RTP-Meta-Info (tt;ft;pn;md) on SETUP.
	// Callers normally set it; false pulls plain RTP and derives the fields.
	AskMetaInfo bool
	// Speed, when above 1, asks the origin on PLAY of an on-demand stream
	// to deliver faster than real time (the Speed header) so the recording
	// fills sooner; the origin's answer says what it applied. The stored
	// transmit times stay the media's own, so players are still paced at
	// real time. Zero plays at real time.
	Speed float64
	// RateLimit, when above zero, is the bandwidth cap (bit/s) the caller
	// holds this session to through WrapConn: Speed is lowered so that the
	// stream's bitrate times the speed stays within it (see playSpeed).
	RateLimit int64
	// WrapConn, when set, wraps the connection to the origin, e.g. to
	// throttle its reads to RateLimit.
	WrapConn func(net.Conn) net.Conn
	// OnClassify, when set, is called with the new classification when the
	// PLAY answer's Range changes what DESCRIBE said (a live stream whose
	// PLAY answer has an end is on demand), after the writer of Run was
	// updated and before its first packet. It runs on Run's goroutine.
	OnClassify func(live bool)

	// RefuseRedirects refuses every redirect of DESCRIBE. Otherwise a
	// redirect is followed only within the URL's scheme, host and port (at
	// most 5 in a row). Either way the client dials no other address, so
	// credentials go nowhere else; a refusal is ErrOriginPolicy.
	RefuseRedirects bool
	// AllowBasicOverPlain lets Basic credentials (the password in clear
	// text) go over plain rtsp://. Without it an origin that offers only
	// Basic over rtsp:// is refused (ErrOriginPolicy). Digest always works.
	AllowBasicOverPlain bool
	// MaxBitrate bounds what Run stores, in bits per second of RTP (headers
	// included): for VOD over the SDP's duration, for live over wall time,
	// each with slack (see streamBudget). Beyond it Run returns
	// ErrStreamLimit. It defaults to DefaultMaxBitrate.
	MaxBitrate int64
}

// OriginSession is an RTSP client session with an origin, set up (DESCRIBE
// and SETUP of every track over TCP-interleaved) and ready to PLAY into a
// PacketWriter.
type OriginSession struct {
	req     OriginRequest
	u       *base.URL
	display string   // the URL without user info
	secrets []string // strings of the URL that must not leak
	log     *slog.Logger
	client  *gortsplib.Client
	desc    *description.Session
	ssd     *sdp.SessionDescription // the description as received, for classify
	m       store.Manifest
	tracks  []*originTrack
	policy  *originPolicy

	mu         sync.Mutex
	lastMethod base.Method
	echoes     []string // x-RTP-Meta-Info of each SETUP response, "" when absent
	cacheCtl   []string
	ran        bool
	cur        *playRun // Run's state, once it began
	speed      float64  // the Speed Run's PLAY asks for (playSpeed); 0: none
	// speedRefused: the origin scaled its RTP clock with the Speed it
	// granted (ErrSpeedScalesClock); Reopen asks for none.
	speedRefused bool
	// droppedAt: the lowest delivery speed at which this session, or a
	// session that went on from it, lost packets (ErrOriginDropped); 0:
	// none did. Reopen asks for half of it.
	droppedAt float64

	closeOnce sync.Once

	ifModifiedSince string // Revalidate's DESCRIBE: the stored Last-Modified
}

// OpenOrigin connects to the origin, sends DESCRIBE and SETUP for every track
// (TCP-interleaved, asking for meta-info when req.AskMetaInfo), and returns
// the session ready for Run. An origin that cannot be reached or does not
// answer within req.Timeout gives an error wrapping ErrOriginUnavailable; a
// description that cannot be used gives one wrapping ErrMalformedSDP.
func OpenOrigin(ctx context.Context, req OriginRequest) (*OriginSession, error) {
	o, err := newOriginSession(req)
	if err != nil {
		return nil, err
	}
	if err := o.client.Start2(); err != nil {
		return nil, o.fail("start client", err)
	}
	ok := false
	defer func() {
		if !ok {
			o.Close()
		}
	}()

	openCtx, cancel := context.WithTimeout(ctx, o.req.Timeout)
	defer cancel()
	stop := context.AfterFunc(openCtx, o.client.Close)
	defer stop()

	desc, res, err := o.client.Describe(o.u)
	if err != nil {
		return nil, o.openErr(openCtx, ctx, "DESCRIBE", err)
	}
	if err := o.describe(desc, res); err != nil {
		return nil, err
	}
	for _, medi := range desc.Medias {
		if _, err := o.client.Setup(desc.BaseURL, medi, 0, 0); err != nil {
			return nil, o.openErr(openCtx, ctx, "SETUP", err)
		}
	}
	if !stop() {
		return nil, o.openErr(openCtx, ctx, "SETUP", liberrors.ErrClientTerminated{})
	}
	if err := o.setupDone(); err != nil {
		return nil, err
	}
	ok = true
	o.log.Debug("origin session open", "tracks", len(o.tracks), "live", o.m.Live,
		"duration", o.m.Duration, "meta_info", o.m.MetaInfo)
	return o, nil
}

// newOriginSession is the session of req with its client configured (the
// origin policy's guards on every request, response and dial) but not
// started.
func newOriginSession(req OriginRequest) (*OriginSession, error) {
	if req.Timeout <= 0 {
		req.Timeout = DefaultOriginTimeout
	}
	log := req.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pu, err := url.Parse(req.URL)
	if err != nil || (pu.Scheme != "rtsp" && pu.Scheme != "rtsps") || pu.Host == "" {
		return nil, fmt.Errorf("origin URL %s: %w: want rtsp://host[:port]/path", redactURL(req.URL), ErrBadPath)
	}
	u, err := base.ParseURL(req.URL)
	if err != nil {
		return nil, fmt.Errorf("origin URL %s: %w", redactURL(req.URL), ErrBadPath)
	}
	o := &OriginSession{
		req:     req,
		u:       u,
		display: redactURL(req.URL),
		secrets: secretsOf(pu),
		log:     log.With("origin", redactURL(req.URL)),
	}
	o.policy = newOriginPolicy(o, u)
	tcp := gortsplib.TransportTCP
	o.client = &gortsplib.Client{
		Scheme:    u.Scheme,
		Host:      u.Host,
		Transport: &tcp,
		// gortsplib times silence in whole seconds, so a ReadTimeout of
		// 1s can fire between two packets; Run watches the media itself
		// against req.Timeout, and opening is bounded by openCtx.
		ReadTimeout:  req.Timeout + time.Second,
		WriteTimeout: req.Timeout,
		DialContext:  o.policy.dial,
		OnRequest:    o.onRequest,
		OnResponse:   o.onResponse,
		OnTransportSwitch: func(err error) {
			o.log.Debug("origin transport switch", "err", o.clean(err))
		},
		OnPacketsLost: func(lost uint64) {
			o.log.Warn("packets lost from origin", "lost", lost)
			o.lost(lost)
		},
		OnDecodeError: func(err error) {
			o.log.Debug("origin decode error", "err", o.clean(err))
		},
	}
	return o, nil
}

// Reopen opens a new session to the same stream with the request o was
// opened with, to go on filling the recording o's Run filled once that Run
// has returned. For a live stream the new session's Run then continues the
// recording without a jump: it re-bases its packets from where o's stopped,
// counting the time in between (see Run).
//
// After a Run that ended with ErrSpeedScalesClock the new session asks
// for no Speed; after one that ended with ErrOriginDropped (here, or in a
// session noteDropped passed on), half the speed it lost packets at.
func (o *OriginSession) Reopen(ctx context.Context) (*OriginSession, error) {
	req := o.req
	o.mu.Lock()
	if o.speedRefused {
		req.Speed = 0
	}
	if o.droppedAt > 0 {
		req.Speed = min(req.Speed, o.droppedAt/2) // playSpeed asks for none at 1 or less
	}
	droppedAt := o.droppedAt
	o.mu.Unlock()
	n, err := OpenOrigin(ctx, req)
	if err == nil {
		n.droppedAt = droppedAt // a later drop halves again from here
	}
	return n, err
}

// noteDropped passes on to o a drop (ErrOriginDropped) that err says a
// session of the same stream had, so that o's Reopen asks for half the
// speed it dropped at.
func (o *OriginSession) noteDropped(err error) {
	var d *DroppedError
	if !errors.As(err, &d) {
		return
	}
	o.mu.Lock()
	if o.droppedAt == 0 || d.Speed < o.droppedAt {
		o.droppedAt = d.Speed
	}
	o.mu.Unlock()
}

// lost ends the run of an on-demand stream delivered faster than real
// time at a loss the client found (a gap in a track's sequence numbers),
// before the packet after the gap: it is called on the client's reader
// goroutine ahead of that packet (playRun.lostPackets).
func (o *OriginSession) lost(n uint64) {
	o.mu.Lock()
	r, live := o.cur, o.m.Live
	o.mu.Unlock()
	if r == nil || live {
		return // a live stream goes on: what was lost cannot be asked for again
	}
	r.lostPackets(n)
}

// describe keeps what DESCRIBE said: the SDP bytes as received, tracks,
// range, freshness.
func (o *OriginSession) describe(desc *description.Session, res *base.Response) error {
	ssd, _, err := parseSDP(res.Body)
	if err != nil {
		return fmt.Errorf("origin %s: %w", o.display, err)
	}
	if len(desc.Medias) > 255 {
		return fmt.Errorf("origin %s: %w: %d media", o.display, ErrMalformedSDP, len(desc.Medias))
	}
	o.desc = desc
	o.ssd = ssd
	c := classify(ssd, "")
	o.m = store.Manifest{
		SDP:    append([]byte(nil), res.Body...),
		Tracks: tracksOf(desc),
		Freshness: store.Freshness{
			CacheControl: strings.Join(res.Header["Cache-Control"], ", "),
			Expires:      first(res.Header["Expires"]),
			LastModified: first(res.Header["Last-Modified"]),
			FetchedAt:    time.Now().UTC(),
		},
		Live:        c.live,
		Duration:    c.duration,
		ClassReason: c.reason,
	}
	o.mu.Lock()
	o.cacheCtl = append(o.cacheCtl, res.Header["Cache-Control"]...)
	o.mu.Unlock()
	return nil
}

// setupDone builds the per-track state from the SETUP answers.
func (o *OriginSession) setupDone() error {
	o.mu.Lock()
	echoes := append([]string(nil), o.echoes...)
	o.mu.Unlock()
	if len(echoes) != len(o.desc.Medias) {
		return fmt.Errorf("origin %s: %d SETUP answers for %d tracks", o.display, len(echoes), len(o.desc.Medias))
	}
	for i, medi := range o.desc.Medias {
		t := newOriginTrack(uint8(i), medi, o.m.Tracks[i])
		if o.req.AskMetaInfo && echoes[i] != "" {
			f, err := metainfo.ParseHeader(echoes[i])
			if err != nil {
				return fmt.Errorf("origin %s: SETUP of track %d: %w", o.display, i, err)
			}
			if f.Has(metainfo.NameMD) {
				t.fields = f
				o.m.MetaInfo = true
			} else {
				o.log.Warn("origin meta-info without md ignored", "track", i, "fields", f.String())
			}
		}
		o.tracks = append(o.tracks, t)
	}
	return nil
}

func (o *OriginSession) onRequest(req *base.Request) {
	o.mu.Lock()
	o.lastMethod = req.Method
	o.policy.checkAuthLocked(req)
	speed := o.speed
	o.mu.Unlock()
	if req.Method == base.Describe && o.ifModifiedSince != "" {
		req.Header["If-Modified-Since"] = base.HeaderValue{o.ifModifiedSince} // Revalidate
	}
	if req.Method == base.Setup && o.req.AskMetaInfo {
		req.Header[metainfo.HeaderName] = base.HeaderValue{metaInfoAsk}
	}
	if req.Method == base.Play && speed > 1 {
		req.Header["Speed"] = base.HeaderValue{speedHeader(speed)}
	}
}

func (o *OriginSession) onResponse(res *base.Response) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lastMethod == base.Describe {
		o.policy.checkRedirectLocked(res)
	}
	if o.lastMethod != base.Setup {
		return
	}
	o.echoes = append(o.echoes, headerValue(res.Header, metainfo.HeaderName))
	o.cacheCtl = append(o.cacheCtl, res.Header["Cache-Control"]...)
}

// Manifest describes the stream as the origin did: SDP as received, tracks,
// freshness, live or VOD with duration, and whether meta-info was agreed.
// Key, State and Source are left for the caller.
func (o *OriginSession) Manifest() store.Manifest {
	o.mu.Lock()
	m := o.m
	o.mu.Unlock()
	m.SDP = append([]byte(nil), m.SDP...)
	m.Tracks = append([]store.Track(nil), m.Tracks...)
	return m
}

// Cacheable is false when the origin said Cache-Control no-cache, no-store
// or private on DESCRIBE or SETUP: relay such a stream, never keep it.
func (o *OriginSession) Cacheable() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, v := range o.cacheCtl {
		for _, d := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-cache", "no-store", "private":
				return false
			}
		}
	}
	return true
}

// Close tears the session down. It is safe to call more than once and
// concurrently with Run, which then returns.
func (o *OriginSession) Close() {
	o.closeOnce.Do(o.client.Close)
}

// openErr classifies an error of the opening phase.
func (o *OriginSession) openErr(openCtx, ctx context.Context, method string, err error) error {
	var bad liberrors.ErrClientBadStatusCode
	var sdpErr liberrors.ErrClientSDPInvalid
	var ctMissing liberrors.ErrClientContentTypeMissing
	var ctBad liberrors.ErrClientContentTypeUnsupported
	perr := o.policy.refusedErr()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("origin %s: %s: %w", o.display, method, ctx.Err())
	case perr != nil:
		return perr
	case openCtx.Err() != nil:
		return fmt.Errorf("origin %s: %w: no answer to %s within %v", o.display, ErrOriginUnavailable, method, o.req.Timeout)
	case errors.As(err, &bad):
		return fmt.Errorf("origin %s: %w", o.display, &OriginStatusError{Method: string(method), Code: int(bad.Code), Message: bad.Message})
	case errors.As(err, &sdpErr), errors.As(err, &ctMissing), errors.As(err, &ctBad):
		return fmt.Errorf("origin %s: %w: %w", o.display, ErrMalformedSDP, o.clean(err))
	}
	return o.fail(method, err)
}

// fail wraps an error as ErrOriginUnavailable with the origin named safely.
func (o *OriginSession) fail(what string, err error) error {
	return fmt.Errorf("origin %s: %w: %s: %w", o.display, ErrOriginUnavailable, what, o.clean(err))
}

// clean hides the URL's credentials in a library error.
func (o *OriginSession) clean(err error) error { return redact(err, o.secrets) }

func first(v base.HeaderValue) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// headerValue finds a header whatever the case the peer wrote its name in.
func headerValue(h base.Header, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
