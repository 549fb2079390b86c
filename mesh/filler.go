package mesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// FillerProtocol is the libp2p protocol id of the filler protocol: asking a
// stream's designated filler to fill it (see doc.go).
const FillerProtocol = "/rtspmesh/filler/1.1.0"

// Bounds and timing of the filler protocol.
const (
	fillerVersion byte = 2
	// fillerUnwatched is the request flag that nobody at the asker plays
	// the stream at real time (a prefetch).
	fillerUnwatched byte = 1 << 0
	// fillerRequestTimeout bounds reading a request after the stream opened.
	fillerRequestTimeout = 5 * time.Second
	// fillerWriteTimeout bounds each status byte the server writes.
	fillerWriteTimeout = 5 * time.Second
	// MaxFillerHolds bounds the requests one server holds at once; more are
	// answered busy.
	MaxFillerHolds = 1024
	// fillerService names the filler protocol in libp2p's resource manager.
	fillerService = "rtspmesh.filler"
)

// Filler protocol status bytes.
const (
	fillerOK            byte = 0 // accepted (first byte), ready (second byte)
	fillerNotConfigured byte = 1 // the server has no origin for the key
	fillerFailed        byte = 2 // the server's fill of the key failed
	fillerBadRequest    byte = 3
	fillerBusy          byte = 4 // MaxFillerHolds held already, or the server is stopping
)

// Filler protocol errors; test with errors.Is.
var (
	// ErrFillerUnreachable: the filler did not accept within the reach bound.
	ErrFillerUnreachable = errors.New("mesh: filler unreachable")
	// ErrNotConfigured: the filler has no origin configured for the key.
	ErrNotConfigured = errors.New("mesh: filler not configured for the origin")
	// ErrFillerFailed: the filler accepted but its fill failed or it went away.
	ErrFillerFailed = errors.New("mesh: filler's fill failed")
)

// Filler is the designated filler of one key as this node sees the mesh.
type Filler struct {
	ID    string // the filler's peer id
	Self  bool   // this node is the filler
	Known int    // members the choice was made among, this node included
}

// Members are the peer ids of the mesh members this node knows now: itself
// and every connected peer that speaks the filler protocol (an identified
// rtspmesh node), sorted.
func (m *Mesh) Members() []string {
	self := m.host.ID()
	out := []string{self.String()}
	for _, p := range m.host.Network().Peers() {
		if p == self || m.host.Network().Connectedness(p) != network.Connected {
			continue
		}
		if ok, err := m.host.Peerstore().SupportsProtocols(p, FillerProtocol); err != nil || len(ok) == 0 {
			continue
		}
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

// Filler picks key's designated filler among the members this node knows,
// leaving out those skip names (nil: none): the member whose
// SHA-256(peer id bytes) is closest to SHA-256(key) in XOR distance, the
// smaller peer id on a tie. Every node that knows the same members picks
// the same one, without a word exchanged.
func (m *Mesh) Filler(key string, skip func(id string) bool) Filler {
	members := m.Members()
	id := ClosestMember(key, members, skip)
	return Filler{ID: id, Self: id == m.ID(), Known: len(members)}
}

// ClosestMember is the rule of Filler over an explicit member list: the id
// in ids (peer id strings) closest to key, leaving out skip's; "" when none
// is left. An id that does not decode ranks by the SHA-256 of its string.
func ClosestMember(key string, ids []string, skip func(id string) bool) string {
	target := sha256.Sum256([]byte(key))
	var (
		best     string
		bestDist [sha256.Size]byte
	)
	for _, id := range ids {
		if skip != nil && skip(id) {
			continue
		}
		raw := []byte(id)
		if p, err := peer.Decode(id); err == nil {
			raw = []byte(p)
		}
		h := sha256.Sum256(raw)
		var d [sha256.Size]byte
		for i := range d {
			d[i] = h[i] ^ target[i]
		}
		if c := bytes.Compare(d[:], bestDist[:]); best == "" || c < 0 || (c == 0 && id < best) {
			best, bestDist = id, d
		}
	}
	return best
}

// FillerHold is an accepted request to a filler: the filler keeps its fill
// of the key running (counts a reader) until Close.
type FillerHold struct {
	s    network.Stream
	once sync.Once
}

// Close releases the hold; it is idempotent.
func (h *FillerHold) Close() { h.once.Do(func() { _ = h.s.Close() }) }

// SetUnwatched tells the filler anew whether anybody at this node plays
// the stream at real time (AskFiller's unwatched): a player joined a
// prefetch, or the last player left a fill that goes on. Not concurrently
// with itself.
func (h *FillerHold) SetUnwatched(unwatched bool) error {
	_ = h.s.SetWriteDeadline(time.Now().Add(fillerWriteTimeout))
	if _, err := h.s.Write([]byte{fillerFlags(unwatched)}); err != nil {
		return fmt.Errorf("tell filler: %w", err)
	}
	return nil
}

// AskFiller asks peer id to fill key and waits until its recording exists.
// unwatched says that nobody at this node plays the stream at real time (a
// prefetch): the filler's hold then counts as no player there, so its
// fill may pull ranges at once. reach bounds opening the stream and the
// filler's acceptance (ErrFillerUnreachable past it); ctx bounds the wait
// for the recording. The caller tails the recording over the fill
// protocol and closes the hold when it is done.
func (m *Mesh) AskFiller(ctx context.Context, id, key string, reach time.Duration, unwatched bool) (*FillerHold, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("ask filler: %w", err)
	}
	pid, err := peer.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("ask filler: peer id: %w", err)
	}
	if m.closing.Err() != nil {
		return nil, fmt.Errorf("ask filler %s: %w", id, ErrClosed)
	}
	rctx, cancel := context.WithTimeout(ctx, reach)
	defer cancel()
	s, err := m.host.NewStream(rctx, pid, FillerProtocol)
	if err != nil {
		return nil, fmt.Errorf("ask filler %s: %w: %w", id, ErrFillerUnreachable, err)
	}
	fail := func(err error) (*FillerHold, error) {
		_ = s.Reset()
		return nil, fmt.Errorf("ask filler %s: %w", id, err)
	}
	if err := s.Scope().SetService(fillerService); err != nil {
		return fail(err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(time.Now().Add(reach))
	if _, err := s.Write(appendFillerRequest(nil, key, unwatched)); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrFillerUnreachable, err))
	}
	st, err := readStatus(s)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrFillerUnreachable, err))
	}
	if err := fillerErr(st, "accepted"); err != nil {
		return fail(err)
	}
	_ = s.SetDeadline(time.Time{}) // ctx bounds the fill's start
	st, err = readStatus(s)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fail(fmt.Errorf("%w: %w", ErrFillerFailed, err))
	}
	if err := fillerErr(st, "ready"); err != nil {
		return fail(err)
	}
	return &FillerHold{s: s}, nil
}

func readStatus(r io.Reader) (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// fillerErr maps a status byte to an error; what is the step it answers.
func fillerErr(st byte, what string) error {
	switch st {
	case fillerOK:
		return nil
	case fillerNotConfigured:
		return ErrNotConfigured
	case fillerFailed:
		return ErrFillerFailed
	case fillerBusy:
		return fmt.Errorf("%w: busy", ErrFillerUnreachable)
	case fillerBadRequest:
		return fmt.Errorf("%w: bad request", ErrProtocol)
	}
	return fmt.Errorf("%w: filler status %d (%s)", ErrProtocol, st, what)
}

// appendFillerRequest encodes a request: u8 version, u16 key length, key,
// u8 flags.
func appendFillerRequest(b []byte, key string, unwatched bool) []byte {
	b = append(b, fillerVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	return append(b, fillerFlags(unwatched))
}

// fillerFlags is the flags byte of a request, or of a hold's update.
func fillerFlags(unwatched bool) byte {
	if unwatched {
		return fillerUnwatched
	}
	return 0
}

// readFillerFlags decodes a flags byte.
func readFillerFlags(flags byte) (unwatched bool, err error) {
	if flags&^fillerUnwatched != 0 {
		return false, fmt.Errorf("%w: filler flags %#x", ErrProtocol, flags)
	}
	return flags&fillerUnwatched != 0, nil
}

// readFillerRequest decodes a request and checks its key and flags.
func readFillerRequest(r io.Reader) (key string, unwatched bool, err error) {
	var h [3]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", false, fmt.Errorf("read filler request: %w", err)
	}
	if h[0] != fillerVersion {
		return "", false, fmt.Errorf("%w: filler request version %d", ErrProtocol, h[0])
	}
	n := int(binary.BigEndian.Uint16(h[1:]))
	if n == 0 || n > MaxKeyLen {
		return "", false, fmt.Errorf("%w: key length %d", ErrProtocol, n)
	}
	b := make([]byte, n+1)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", false, fmt.Errorf("read filler request: %w", err)
	}
	key = string(b[:n])
	if err := checkKey(key); err != nil {
		return "", false, err
	}
	unwatched, err = readFillerFlags(b[n])
	if err != nil {
		return "", false, err
	}
	return key, unwatched, nil
}

// handleFiller serves one filler request (the server side of doc.go's
// filler protocol): it asks the node to fill the key (Config.StartFill),
// says when the recording exists, and holds the fill until the asker closes
// the stream.
func (m *Mesh) handleFiller(s network.Stream) {
	if !m.handling(s) {
		return
	}
	defer m.handlers.Done()
	if err := s.Scope().SetService(fillerService); err != nil {
		_ = s.Reset()
		return
	}
	remote := s.Conn().RemotePeer().String()
	log := m.log.With("filler_for", remote)
	answer := func(st byte) bool {
		_ = s.SetWriteDeadline(time.Now().Add(fillerWriteTimeout))
		_, err := s.Write([]byte{st})
		return err == nil
	}
	_ = s.SetReadDeadline(time.Now().Add(fillerRequestTimeout))
	key, unwatched, err := readFillerRequest(s)
	if err != nil {
		log.Debug("bad filler request", "err", err)
		answer(fillerBadRequest)
		_ = s.Close()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	log = log.With("stream", key)
	if m.holds.Add(1) > MaxFillerHolds || m.cfg.StartFill == nil {
		m.holds.Add(-1)
		answer(fillerBusy)
		_ = s.Close()
		return
	}
	defer m.holds.Add(-1)
	if m.cfg.Configured != nil && !m.cfg.Configured(key) {
		log.Info("filler request for an origin not configured here")
		answer(fillerNotConfigured)
		_ = s.Close()
		return
	}
	if !answer(fillerOK) {
		_ = s.Reset()
		return
	}

	// After its request the asker sends only flags bytes, each saying
	// anew whether anybody watches there (the last one counts); a read that
	// fails means it closed or reset the stream, and the hold is over, as
	// does a bad flags byte. On the way out the stream is reset, which ends
	// the read when the hold ends first; after a failure status it is
	// half-closed instead (a reset could drop the status), and the asker
	// closes it.
	ctx, cancel := context.WithCancel(m.closing)
	defer cancel()
	var reader sync.WaitGroup
	defer reader.Wait()
	end := func() { _ = s.Reset() }
	defer func() { end() }()
	updates := make(chan bool, 1) // the latest flags byte not yet applied
	reader.Go(func() {
		defer cancel()
		var b [1]byte
		for {
			if _, err := s.Read(b[:]); err != nil {
				return
			}
			u, err := readFillerFlags(b[0])
			if err != nil {
				log.Debug("bad filler hold update", "err", err)
				return
			}
			select {
			case <-updates: // replaced by this one
			default:
			}
			updates <- u
		}
	})
	release, watch, err := m.cfg.StartFill(ctx, key, unwatched)
	if err != nil {
		log.Info("fill asked by a neighbour failed", "err", err)
		if answer(fillerFailed) {
			_ = s.SetReadDeadline(time.Now().Add(fillerWriteTimeout))
			end = func() { _ = s.CloseWrite() }
		}
		return
	}
	defer release()
	if !answer(fillerOK) {
		return
	}
	log.Debug("filling for a neighbour", "unwatched", unwatched)
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-updates:
			if u != unwatched && watch != nil {
				unwatched = u
				log.Debug("the neighbour's watchers changed", "unwatched", unwatched)
				watch(unwatched)
			}
		}
	}
}
