package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Defaults for the zero values of Config.
const (
	DefaultProviderTTL   = time.Hour
	DefaultFindTimeout   = 300 * time.Millisecond
	DefaultStallTimeout  = 15 * time.Second
	DefaultAnswerTimeout = 2 * time.Second
	DefaultDistrustFor   = 10 * time.Minute

	minStallTimeout = 3 * time.Second
)

// DefaultListen is where a node listens when Config.Listen is empty: TCP and
// QUIC on port 4001 of every interface.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

// Config configures a Mesh. Zero values take the defaults stated per field.
type Config struct {
	// DataDir holds the node's identity key (file peer.key, mode 0600), so the
	// peer id survives restarts. Required.
	DataDir string
	// Listen is the libp2p listen multiaddrs (default DefaultListen). With a
	// PSKFile, the addresses PrivateListen drops are not listened on.
	Listen []string
	// Bootstrap is the multiaddrs (with /p2p/<id>) of peers to join through.
	// Empty makes this node a first node that others bootstrap from.
	Bootstrap []string
	// MDNS finds neighbours on the local network.
	MDNS bool
	// PSKFile makes the mesh private: only nodes holding the same key (a file
	// written by GenerateKey) connect (see PrivateListen).
	PSKFile string
	// AllowPeers, when not empty, admits connections only from these peer ids.
	AllowPeers []string
	// TrustedSigners, when not empty, is the peer ids whose signed content
	// this node accepts (besides its own); else AllowPeers; else, with a
	// PSKFile, every member; else, on loopback-only Listen addresses, every
	// signer; else none (doc.go, "Provenance").
	TrustedSigners []string
	// NotFiller keeps this node out of the designated-filler rule: it does
	// not offer the filler protocol, so no member counts it (doc.go,
	// "Fillers"). For a node that should never pull for others, such as
	// one behind a thin link.
	NotFiller bool
	// WrapFill, when set, wraps what a fill reads from peer (its stream),
	// e.g. to cap the bandwidth fills from each peer take.
	WrapFill func(peer string, r io.Reader) io.Reader
	// MaxFills is the most fills this node runs at once (the node's
	// fills.max_concurrent): the resource manager makes room for that many
	// from one peer, and for twice as many served to one peer, and bounds
	// what the fill protocol reserves with one peer to FillMemory(MaxFills)
	// (doc.go, "Resource limits"). Default DefaultMaxFills (64).
	MaxFills int
	// AnswerTimeout bounds how long a provider may take to answer a fill
	// request, on top of its round-trip time (default 2s).
	AnswerTimeout time.Duration
	// DistrustFor is how long a provider that lied (announced a key it
	// could not serve, or served a bad signature) is skipped (default 10m).
	DistrustFor time.Duration
	// TrustedOnly, when set, names the keys whose recordings this node
	// serves only to trusted signers (an origin that needs credentials);
	// other peers get "not found".
	TrustedOnly func(key string) bool
	// ProviderTTL is how long a provider record lives in the DHT (default 1h).
	// Every node of a mesh must set the same value: the node that stores a
	// record is the one that expires it.
	ProviderTTL time.Duration
	// ReprovideInterval is how often held keys are announced again; it must
	// be shorter than half of ProviderTTL (default ProviderTTL/3).
	ReprovideInterval time.Duration
	// FindTimeout bounds FindProviders, lookup and RTT measurement together
	// (default 300ms).
	FindTimeout time.Duration
	// StallTimeout is how long a fill waits for the next frame from a peer
	// before it gives up on it (default 15s, at least 3s: servers send a
	// keep-alive frame every KeepaliveInterval while they wait for a filling
	// recording).
	StallTimeout time.Duration
	// ServingLive, when set, is called when this node starts relaying a live
	// recording to a peer, and the function it returns when that ends. A node
	// uses it to keep its live upstream open while neighbours relay from it.
	ServingLive func(key string) (done func())
	// Configured, when set, says whether this node has an origin for key;
	// the filler protocol refuses a request for a key it does not
	// (ErrNotConfigured at the asker). Nil: every key.
	Configured func(key string) bool
	// StartFill, when set, serves the filler protocol: it starts (or joins)
	// this node's fill of key, returns once the recording exists, and keeps
	// the fill running until release. unwatched: nobody at the asker plays
	// the stream at real time (a prefetch), so the hold is no player;
	// watch says so anew when the asker does (before release, on the same
	// goroutine; a nil watch ignores it). Nil: requests are answered busy.
	StartFill func(ctx context.Context, key string, unwatched bool) (release func(), watch func(unwatched bool), err error)
	// Logger receives the mesh's log lines (default: discarded).
	Logger *slog.Logger
}

// withDefaults returns cfg with zero values replaced by defaults.
func (cfg Config) withDefaults() Config {
	if len(cfg.Listen) == 0 {
		cfg.Listen = DefaultListen
	}
	if cfg.ProviderTTL == 0 {
		cfg.ProviderTTL = DefaultProviderTTL
	}
	if cfg.ReprovideInterval == 0 {
		cfg.ReprovideInterval = cfg.ProviderTTL / 3
	}
	if cfg.FindTimeout == 0 {
		cfg.FindTimeout = DefaultFindTimeout
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.MaxFills == 0 {
		cfg.MaxFills = DefaultMaxFills
	}
	if cfg.AnswerTimeout == 0 {
		cfg.AnswerTimeout = DefaultAnswerTimeout
	}
	if cfg.DistrustFor == 0 {
		cfg.DistrustFor = DefaultDistrustFor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate checks a Config that has its defaults applied. The messages name
// the Config field.
func (cfg Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("mesh config: "+format, args...))
	}
	if cfg.DataDir == "" {
		bad("DataDir is required (it keeps the peer identity)")
	}
	for _, s := range cfg.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			bad("Listen %q: %w", s, err)
		}
	}
	for _, s := range cfg.Bootstrap {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			bad("Bootstrap %q: want a multiaddr ending in /p2p/<peer id>: %w", s, err)
		}
	}
	for _, s := range cfg.AllowPeers {
		if _, err := peer.Decode(s); err != nil {
			bad("AllowPeers %q: not a peer id: %w", s, err)
		}
	}
	for _, s := range cfg.TrustedSigners {
		if _, err := peer.Decode(s); err != nil {
			bad("TrustedSigners %q: not a peer id: %w", s, err)
		}
	}
	if cfg.MaxFills < 0 || cfg.MaxFills > MaxMaxFills {
		bad("MaxFills %d: must be between 1 and %d", cfg.MaxFills, MaxMaxFills)
	}
	if cfg.AnswerTimeout < 0 || cfg.DistrustFor < 0 {
		bad("AnswerTimeout %v, DistrustFor %v: must be positive", cfg.AnswerTimeout, cfg.DistrustFor)
	}
	if cfg.ProviderTTL < 0 {
		bad("ProviderTTL %v: must be positive", cfg.ProviderTTL)
	}
	if cfg.ReprovideInterval <= 0 || cfg.ReprovideInterval >= cfg.ProviderTTL/2 {
		bad("ReprovideInterval %v: must be positive and shorter than half of ProviderTTL %v",
			cfg.ReprovideInterval, cfg.ProviderTTL)
	}
	if cfg.FindTimeout < 0 {
		bad("FindTimeout %v: must be positive", cfg.FindTimeout)
	}
	if cfg.StallTimeout < minStallTimeout {
		bad("StallTimeout %v: must be at least %v (peers send keep-alives every %v)",
			cfg.StallTimeout, minStallTimeout, KeepaliveInterval)
	}
	return errors.Join(errs...)
}
