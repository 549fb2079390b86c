package origin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// Config configures an Origin.
type Config struct {
	// Listen is the RTSP (TCP) address. Default ":8554". Tests use
	// "127.0.0.1:0" and read Addr.
	Listen string
	// UDPRTPAddress and UDPRTCPAddress enable UDP transport (both or
	// neither; the RTP port must be even and the RTCP port the next one).
	UDPRTPAddress  string
	UDPRTCPAddress string
	// Media maps a path (without leading slash, e.g. "sample.ts") to an
	// MPEG-TS file served as VOD.
	Media map[string][]byte
	// MediaDir adds every *.ts file of a directory as VOD under its file name.
	MediaDir string
	// Live maps a path to an MPEG-TS file looped forever as a live stream.
	Live map[string][]byte
	// DisableMetaInfo ignores x-RTP-Meta-Info requests: sessions get plain RTP.
	DisableMetaInfo bool
	// RandomRTPBase starts every session's RTP sequence numbers and
	// timestamps at random offsets, as RFC 3550 asks and cameras do. By
	// default every session of a clip carries the same numbers, which makes
	// a proxy that splices two sessions look right whether or not it is.
	RandomRTPBase bool
	// CacheControl maps a path to the Cache-Control value sent on its
	// DESCRIBE and SETUP responses (e.g. "no-cache"). None by default.
	CacheControl map[string]string
	// Expires maps a path to the Expires time sent on its DESCRIBE
	// responses. None by default.
	Expires map[string]time.Time
	// MaxSpeed caps the Speed header. Default 8.
	MaxSpeed float64
	// WriteQueueSize is the per-session packet queue (power of two). Default 4096.
	WriteQueueSize int
	// DropAtSpeed, a controlled fault, makes every play at a Speed of at
	// least DropAtSpeed that reaches media time DropAt lose the DropCount
	// packets in a row from there (their sequence numbers are skipped), as
	// a server does whose write queue overflowed because its client read
	// slower than the Speed it granted. 0 (the default) drops none.
	DropAtSpeed float64
	DropAt      time.Duration
	DropCount   int
	// MaxSessions, when > 0, refuses a session's first SETUP of a path
	// with 453 Not Enough Bandwidth while MaxSessions other sessions hold
	// that path, as a camera that accepts one or two sessions does.
	// Refused counts the refusals.
	MaxSessions int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Origin is the built-in RTSP origin.
type Origin struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	entries map[string]*entry
	server  *gortsplib.Server
	epoch   time.Time     // the live clock: tt 0 of every live stream
	sent    atomic.Uint64 // RTP packets handed to sessions, all paths

	mu       sync.Mutex
	closed   bool
	running  bool
	pacers   sync.WaitGroup
	pending  map[*gortsplib.ServerConn]*session // PLAY answered, pacer not yet started
	sessions map[*gortsplib.ServerSession]*session
	replaced map[string]*entry // VOD paths whose file Replace replaced
}

// entry is one served path.
type entry struct {
	path         string
	clip         *Clip
	live         bool
	sdp          []byte
	cacheControl string
	modified     time.Time // Last-Modified of a VOD file (whole seconds); zero for live

	describes, plays int  // guarded by Origin.mu
	open, refused    int  // sessions set up on the path now, SETUPs refused by MaxSessions; guarded by Origin.mu
	ended            bool // a live stream EndLive ended; guarded by Origin.mu
}

// New validates cfg, packetizes every file and binds the TCP listener (so
// Addr is known at once). Run serves; Close releases the listener if Run is
// never called.
func New(cfg Config) (*Origin, error) {
	if cfg.Listen == "" {
		cfg.Listen = ":8554"
	}
	if (cfg.UDPRTPAddress == "") != (cfg.UDPRTCPAddress == "") {
		return nil, errors.New("origin: set both UDPRTPAddress and UDPRTCPAddress, or neither")
	}
	if cfg.MaxSpeed == 0 {
		cfg.MaxSpeed = 8
	}
	if cfg.MaxSpeed < 1 {
		return nil, fmt.Errorf("origin: MaxSpeed %v: must be at least 1", cfg.MaxSpeed)
	}
	if cfg.WriteQueueSize == 0 {
		cfg.WriteQueueSize = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	o := &Origin{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "origin"),
		entries:  make(map[string]*entry),
		pending:  make(map[*gortsplib.ServerConn]*session),
		sessions: make(map[*gortsplib.ServerSession]*session),
	}
	media := make(map[string][]byte)
	modified := make(map[string]time.Time)
	now := time.Now().Truncate(time.Second)
	for p, b := range cfg.Media {
		media[p], modified[p] = b, now
	}
	if cfg.MediaDir != "" {
		files, err := filepath.Glob(filepath.Join(cfg.MediaDir, "*.ts"))
		if err != nil {
			return nil, fmt.Errorf("origin: media dir %s: %w", cfg.MediaDir, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("origin: media dir: %w", err)
			}
			fi, err := os.Stat(f)
			if err != nil {
				return nil, fmt.Errorf("origin: media dir: %w", err)
			}
			media[filepath.Base(f)] = b
			modified[filepath.Base(f)] = fi.ModTime().Truncate(time.Second)
		}
	}
	add := func(p string, ts []byte, live bool, mod time.Time) error {
		p = strings.Trim(p, "/")
		if p == "" {
			return errors.New("origin: empty path")
		}
		if _, dup := o.entries[p]; dup {
			return fmt.Errorf("origin: path %q given twice", p)
		}
		e, err := newEntry(p, ts, live, cfg.CacheControl[p], mod)
		if err != nil {
			return err
		}
		o.entries[p] = e
		return nil
	}
	for _, p := range sortedKeys(media) {
		if err := add(p, media[p], false, modified[p]); err != nil {
			return nil, err
		}
	}
	for _, p := range sortedKeys(cfg.Live) {
		if err := add(p, cfg.Live[p], true, time.Time{}); err != nil {
			return nil, err
		}
	}
	if len(o.entries) == 0 {
		return nil, errors.New("origin: nothing to serve: set Media, MediaDir or Live")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err) // net says "listen tcp <addr>: …"
	}
	o.ln = ln
	return o, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Addr is the RTSP address, e.g. "127.0.0.1:41234".
func (o *Origin) Addr() string { return o.ln.Addr().String() }

// Paths lists the served paths, VOD and live.
func (o *Origin) Paths() []string {
	var ps []string
	for p := range o.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// Sessions returns how many DESCRIBE requests and how many playing sessions
// (sessions that sent at least one successful PLAY; a resume does not count
// again) path has seen.
func (o *Origin) Sessions(path string) (describes, plays int) {
	o.withEntry(path, func(e *entry) { describes, plays = e.describes, e.plays })
	return describes, plays
}

// Refused returns how many SETUPs of path MaxSessions refused, and how
// many sessions hold path now.
func (o *Origin) Refused(path string) (refused, open int) {
	o.withEntry(path, func(e *entry) { refused, open = e.refused, e.open })
	return refused, open
}

// withEntry calls f with path's entry under o.mu, if path is served.
func (o *Origin) withEntry(path string, f func(*entry)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.replaced[strings.Trim(path, "/")]
	if !ok {
		e, ok = o.entries[strings.Trim(path, "/")]
	}
	if ok {
		f(e)
	}
}

// Stall stops sending media to every session playing path and leaves the
// sessions and their connections open (RTCP sender reports go on), as an
// origin that hangs does; they stay silent until closed or played again.
// New sessions play normally. It returns how many sessions it stalled. It
// is for tests of how clients handle a silent origin.
func (o *Origin) Stall(path string) int {
	return o.stopPlaying(strings.Trim(path, "/"), nil)
}

// EndLive ends the live stream at path as a broadcast ends: every session
// playing it gets an RTCP BYE per track and no more media, and the path is
// gone (404) from then on. It returns how many sessions it ended. It is for
// tests of how clients handle the end of a live stream.
func (o *Origin) EndLive(path string) int {
	path = strings.Trim(path, "/")
	e, ok := o.entries[path]
	if !ok || !e.live {
		return 0
	}
	o.mu.Lock()
	e.ended = true
	o.mu.Unlock()
	return o.stopPlaying(path, func(s *session, st *gortsplib.ServerStream) {
		newReporter(st, e.clip, o.epoch, 1, s.tsOff).bye()
	})
}

// stopPlaying stops the pacer of every session playing path and then calls
// then (when not nil) with its stream. It returns how many it stopped.
func (o *Origin) stopPlaying(path string, then func(*session, *gortsplib.ServerStream)) int {
	o.mu.Lock()
	var all []*session
	for _, s := range o.sessions {
		all = append(all, s)
	}
	o.mu.Unlock()
	n := 0
	for _, s := range all {
		s.mu.Lock()
		playing, st := s.e != nil && s.e.path == path && s.run != nil, s.stream
		s.mu.Unlock()
		if playing {
			s.stop()
			if then != nil {
				then(s, st)
			}
			n++
		}
	}
	return n
}

// Run serves until ctx ends, then closes every session and returns after
// every goroutine it started (the server's and the pacers) has stopped.
func (o *Origin) Run(ctx context.Context) error {
	o.mu.Lock()
	if o.closed || o.running {
		o.mu.Unlock()
		return errors.New("origin: Run called twice or after Close")
	}
	o.running = true
	o.epoch = time.Now()
	o.mu.Unlock()

	ln := o.ln
	o.server = &gortsplib.Server{
		Handler:        (*handler)(o),
		RTSPAddress:    ln.Addr().String(),
		UDPRTPAddress:  o.cfg.UDPRTPAddress,
		UDPRTCPAddress: o.cfg.UDPRTCPAddress,
		WriteQueueSize: o.cfg.WriteQueueSize,
		// Sessions send their own sender reports (reporter): gortsplib's
		// read the payload, which meta-info makes opaque to them.
		DisableRTCPSenderReports: true,
		Listen: func(string, string) (net.Listener, error) {
			return ln, nil
		},
	}
	if err := o.server.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("origin: start: %w", err)
	}
	o.log.Info("origin listening", "addr", o.Addr(), "paths", o.Paths())

	errc := make(chan error, 1)
	go func() { errc <- o.server.Wait() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.server.Close()
	if err == nil {
		<-errc
	}
	o.pacers.Wait()
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	return nil
}

// Close releases the listener of an Origin whose Run was never called. It is
// not needed after Run.
func (o *Origin) Close() {
	o.mu.Lock()
	wasRunning := o.running
	o.closed = true
	o.mu.Unlock()
	if !wasRunning {
		o.ln.Close()
	}
}
