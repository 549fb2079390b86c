package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rtspmesh/rtspmesh/store"
)

// CatalogueProtocol is the libp2p protocol id of the catalogue protocol: a
// peer's list of the recordings it holds (doc.go).
const CatalogueProtocol = "/rtspmesh/catalogue/1.0.0"

// Bounds of the catalogue protocol.
const (
	// MaxCatalogueEntries is the most recordings one answer lists; a node
	// that holds more says so (Catalogue.Truncated).
	MaxCatalogueEntries = 256
	// MaxCatalogueLen bounds an answer's bytes (entries that would pass it
	// are left out, as above).
	MaxCatalogueLen = 256 << 10
	// maxSourceLen bounds an entry's source: "origin" or a peer id.
	maxSourceLen = 128
	// CatalogueTimeout bounds a whole exchange, on either side.
	CatalogueTimeout = 5 * time.Second
	// catalogueServing is how many answers a node writes at once; a request
	// past it is reset (the asker tries again on its next refresh).
	catalogueServing = 4
	// catalogueService names the protocol in libp2p's resource manager.
	catalogueService = "rtspmesh.catalogue"
)

// catalogueRequest is the one request byte: "list what you hold".
const catalogueRequest byte = 1

// Entry states on the wire.
var wireStates = []store.State{1: store.StateFilling, 2: store.StateComplete, 3: store.StatePartial, 4: store.StateLive}

// CatalogueEntry is one recording a peer holds.
type CatalogueEntry struct {
	Key      string        // the stream key (canonical origin URL)
	State    store.State   // filling, complete, partial or live
	Live     bool          // a live stream (its window)
	Source   string        // "origin", the peer id it came from, or "" between sources
	Bytes    uint64        // RTP bytes stored
	Duration time.Duration // of what is stored
}

// Catalogue is what a peer answered.
type Catalogue struct {
	Entries   []CatalogueEntry // ordered by key
	Truncated bool             // the peer holds more than it listed
}

// handleCatalogue answers one catalogue request (the server side of doc.go's
// protocol). Only peers the host admits (the PSK and the allow-list gate
// every connection) reach it.
func (m *Mesh) handleCatalogue(s network.Stream) {
	if !m.handling(s) {
		return
	}
	defer m.handlers.Done()

	select {
	case m.catalogueSlots <- struct{}{}:
		defer func() { <-m.catalogueSlots }()
	default:
		_ = s.Reset()
		return
	}
	if err := s.Scope().SetService(catalogueService); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(CatalogueTimeout))
	var req [1]byte
	if _, err := io.ReadFull(s, req[:]); err != nil || req[0] != catalogueRequest {
		m.log.Debug("bad catalogue request", "from", s.Conn().RemotePeer().String(), "err", err)
		_ = s.Reset()
		return
	}
	infos, err := m.st.List()
	if err != nil {
		m.log.Debug("catalogue: list recordings", "err", err)
		_ = s.Reset()
		return
	}
	if f := m.cfg.TrustedOnly; f != nil && !m.trust.trusts(s.Conn().RemotePeer()) {
		// What only trusted signers may fill, they alone see listed.
		infos = slices.DeleteFunc(infos, func(in store.Info) bool { return f(in.Key) })
	}
	if _, err := s.Write(appendCatalogue(nil, infos)); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// appendCatalogue appends the answer listing infos, within the bounds.
func appendCatalogue(b []byte, infos []store.Info) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0) // status, flags, u16 count: set below
	var n uint16
	truncated := false
	for _, in := range infos {
		e := appendEntry(nil, in)
		if e == nil {
			continue // nothing the protocol can carry (a key it refuses)
		}
		if n == MaxCatalogueEntries || len(b)-start+len(e) > MaxCatalogueLen {
			truncated = true
			break
		}
		b = append(b, e...)
		n++
	}
	if truncated {
		b[start+1] = 1
	}
	binary.BigEndian.PutUint16(b[start+2:], n)
	return b
}

// appendEntry encodes one recording; nil when it cannot be carried.
func appendEntry(b []byte, in store.Info) []byte {
	state := 0
	for i, s := range wireStates {
		if s == in.State && i > 0 {
			state = i
		}
	}
	if checkKey(in.Key) != nil || state == 0 || len(in.Source) > maxSourceLen {
		return nil
	}
	var flags byte
	if in.Live {
		flags = 1
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(in.Key)))
	b = append(b, in.Key...)
	b = append(b, byte(state), flags, byte(len(in.Source)))
	b = append(b, in.Source...)
	b = binary.BigEndian.AppendUint64(b, in.Bytes)
	return binary.BigEndian.AppendUint64(b, uint64(max(in.Duration, 0)))
}

// readCatalogue decodes an answer. Every field is checked against doc.go's
// bounds; the reader should be limited to MaxCatalogueLen bytes.
func readCatalogue(r io.Reader) (Catalogue, error) {
	br := bufio.NewReader(r)
	var h [4]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return Catalogue{}, fmt.Errorf("read catalogue: %w", noEOF(err))
	}
	if h[0] != statusOK {
		return Catalogue{}, fmt.Errorf("%w: catalogue status %d", ErrProtocol, h[0])
	}
	if h[1]&^1 != 0 {
		return Catalogue{}, fmt.Errorf("%w: catalogue flags %#x", ErrProtocol, h[1])
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n > MaxCatalogueEntries {
		return Catalogue{}, fmt.Errorf("%w: catalogue of %d entries", ErrProtocol, n)
	}
	c := Catalogue{Truncated: h[1]&1 != 0, Entries: make([]CatalogueEntry, 0, n)}
	for i := range n {
		e, err := readEntry(br)
		if err != nil {
			return Catalogue{}, fmt.Errorf("catalogue entry %d: %w", i, err)
		}
		if i > 0 && e.Key <= c.Entries[i-1].Key {
			return Catalogue{}, fmt.Errorf("%w: catalogue entry %d out of order", ErrProtocol, i)
		}
		c.Entries = append(c.Entries, e)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return Catalogue{}, fmt.Errorf("%w: bytes after the catalogue", ErrProtocol)
	}
	return c, nil
}

func readEntry(r io.Reader) (CatalogueEntry, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return CatalogueEntry{}, noEOF(err)
	}
	kl := int(binary.BigEndian.Uint16(l[:]))
	if kl == 0 || kl > MaxKeyLen {
		return CatalogueEntry{}, fmt.Errorf("%w: key length %d", ErrProtocol, kl)
	}
	b := make([]byte, kl+3)
	if _, err := io.ReadFull(r, b); err != nil {
		return CatalogueEntry{}, noEOF(err)
	}
	e := CatalogueEntry{Key: string(b[:kl])}
	if err := checkKey(e.Key); err != nil {
		return CatalogueEntry{}, err
	}
	state, flags, sl := int(b[kl]), b[kl+1], int(b[kl+2])
	if state == 0 || state >= len(wireStates) {
		return CatalogueEntry{}, fmt.Errorf("%w: state %d", ErrProtocol, state)
	}
	if flags&^1 != 0 {
		return CatalogueEntry{}, fmt.Errorf("%w: entry flags %#x", ErrProtocol, flags)
	}
	if sl > maxSourceLen {
		return CatalogueEntry{}, fmt.Errorf("%w: source length %d", ErrProtocol, sl)
	}
	e.State, e.Live = wireStates[state], flags&1 != 0
	rest := make([]byte, sl+16)
	if _, err := io.ReadFull(r, rest); err != nil {
		return CatalogueEntry{}, noEOF(err)
	}
	e.Source = string(rest[:sl])
	if e.Source != "" && e.Source != "origin" {
		if _, err := peer.Decode(e.Source); err != nil {
			return CatalogueEntry{}, fmt.Errorf("%w: source %q is neither origin nor a peer id", ErrProtocol, e.Source)
		}
	}
	e.Bytes = binary.BigEndian.Uint64(rest[sl:])
	d := binary.BigEndian.Uint64(rest[sl+8:])
	if d > math.MaxInt64 {
		return CatalogueEntry{}, fmt.Errorf("%w: duration", ErrProtocol)
	}
	e.Duration = time.Duration(d)
	return e, nil
}

// Catalogue asks a connected (or reachable) peer for the recordings it
// holds. The exchange is bounded by CatalogueTimeout and MaxCatalogueLen.
func (m *Mesh) Catalogue(ctx context.Context, peerID string) (Catalogue, error) {
	id, err := peer.Decode(peerID)
	if err != nil {
		return Catalogue{}, fmt.Errorf("catalogue: peer id: %w", err)
	}
	if m.closing.Err() != nil {
		return Catalogue{}, fmt.Errorf("catalogue of %s: %w", id, ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, CatalogueTimeout)
	defer cancel()
	s, err := m.host.NewStream(ctx, id, CatalogueProtocol)
	if err != nil {
		return Catalogue{}, fmt.Errorf("catalogue of %s: %w", id, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	fail := func(err error) (Catalogue, error) {
		_ = s.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Catalogue{}, fmt.Errorf("catalogue of %s: %w", id, err)
	}
	if err := s.Scope().SetService(catalogueService); err != nil {
		return fail(err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(deadline)
	}
	if _, err := s.Write([]byte{catalogueRequest}); err != nil {
		return fail(err)
	}
	_ = s.CloseWrite()
	c, err := readCatalogue(io.LimitReader(s, MaxCatalogueLen))
	if err != nil {
		return fail(err)
	}
	_ = s.Close()
	return c, nil
}
