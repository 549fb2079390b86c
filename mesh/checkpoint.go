package mesh

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rtspmesh/rtspmesh/store"
)

// Live checkpoints (doc.go, "Provenance"): the packets of a live recording
// past its sealed segments are signed in small batches by the node that
// pulls the stream from its origin; relays pass the checkpoints on
// unchanged, and a receiver stores a live packet only once a checkpoint
// from a trusted signer names it.

// Bounds and timing of checkpoints.
const (
	// MaxCheckpointPackets is the most packets one checkpoint names.
	MaxCheckpointPackets = 1024
	// CheckpointWait is how long a client holds a live packet that no
	// checkpoint names before it takes the peer for a liar.
	CheckpointWait = time.Second
	// CheckpointEvery is the least time between two checkpoints a server
	// signs on one stream: a checkpoint per write (a video frame's
	// packets, an audio packet), but no more than 1000 a second when
	// packets come one by one (a high bit rate paced by its origin: 34 ms
	// of signing a second at most, per client). A packet so waits at most
	// this long (and a timer's slack) for its checkpoint on the first hop;
	// with 5 ms, video packets waited behind the audio ones signed just
	// before them (BenchmarkLiveRelayHop's median 1.2–1.4 ms in two runs
	// of four, against 0.1 ms).
	CheckpointEvery = time.Millisecond
	// maxHeld is the most live frames a client holds unverified.
	maxHeld = 4096
	// relayedCheckpoints is how many packets' checkpoints a node keeps per
	// live key to pass on to its own clients (an open segment has at most
	// 256 KiB of packets: a few hundred), checkpointKeys how many keys:
	// about 0.4 MiB a key, 26 MiB at most.
	relayedCheckpoints = 4096
	checkpointKeys     = 64
)

const (
	checkpointDomain    = "rtspmesh/live/1\x00"
	checkpointHeaderLen = 1 + 1 + ed25519.PublicKeySize + ed25519.SignatureSize + 2
	checkpointEntryLen  = 8 + 32
)

// checkpointEntry names one packet: its number and the SHA-256 of its
// record (the packet frame's body).
type checkpointEntry struct {
	PN   uint64
	Hash store.Hash
}

// checkpoint is a verified checkpoint frame: its bytes as they go on the
// wire, and what it names.
type checkpoint struct {
	raw     []byte
	digest  store.Hash
	signer  peer.ID
	entries []checkpointEntry
}

// checkpointMessage is what a checkpoint's signature signs.
func checkpointMessage(digest store.Hash, body []byte) []byte {
	b := make([]byte, 0, len(checkpointDomain)+32+len(body))
	b = append(b, checkpointDomain...)
	b = append(b, digest[:]...)
	return append(b, body...)
}

// appendCheckpoint appends a checkpoint frame naming entries, signed by s
// for the recording whose header digest is digest: type 7, u8 version,
// signer key, signature, u16 count, then per packet u64 number and hash.
func appendCheckpoint(b []byte, s *signer, digest store.Hash, entries []checkpointEntry) []byte {
	b = append(b, frameCheckpoint, sealVersion)
	b = append(b, s.pub[:]...)
	sig := len(b)
	b = append(b, make([]byte, ed25519.SignatureSize)...)
	body := len(b)
	b = binary.BigEndian.AppendUint16(b, uint16(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint64(b, e.PN)
		b = append(b, e.Hash[:]...)
	}
	copy(b[sig:body], ed25519.Sign(s.priv, checkpointMessage(digest, b[body:])))
	return b
}

// readCheckpoint reads a checkpoint frame's bytes after its type byte, and
// returns the whole frame.
func readCheckpoint(r io.Reader) ([]byte, error) {
	b := make([]byte, checkpointHeaderLen, checkpointHeaderLen+64*checkpointEntryLen)
	b[0] = frameCheckpoint
	if _, err := io.ReadFull(r, b[1:]); err != nil {
		return nil, noEOF(err)
	}
	n := int(binary.BigEndian.Uint16(b[checkpointHeaderLen-2:]))
	if b[1] != sealVersion || n == 0 || n > MaxCheckpointPackets {
		return nil, fmt.Errorf("%w: checkpoint version %d, %d packets", ErrProtocol, b[1], n)
	}
	b = append(b, make([]byte, n*checkpointEntryLen)...)
	if _, err := io.ReadFull(r, b[checkpointHeaderLen:]); err != nil {
		return nil, noEOF(err)
	}
	return b, nil
}

// verifyCheckpoint checks a checkpoint frame (as readCheckpoint returns
// it) of the recording whose header digest is digest: its signer trusted,
// its signature good.
func (t *trust) verifyCheckpoint(digest store.Hash, raw []byte) (*checkpoint, error) {
	const keyAt, sigAt, bodyAt = 2, 2 + ed25519.PublicKeySize, checkpointHeaderLen - 2
	if len(raw) < checkpointHeaderLen || raw[0] != frameCheckpoint || raw[1] != sealVersion {
		return nil, fmt.Errorf("%w: checkpoint", ErrProtocol)
	}
	n := int(binary.BigEndian.Uint16(raw[bodyAt:]))
	if n == 0 || n > MaxCheckpointPackets || len(raw) != checkpointHeaderLen+n*checkpointEntryLen {
		return nil, fmt.Errorf("%w: checkpoint of %d bytes names %d packets", ErrProtocol, len(raw), n)
	}
	id, err := signerID(raw[keyAt:sigAt])
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint signer key: %v", ErrBadSeal, err)
	}
	if !t.trusts(id) {
		return nil, fmt.Errorf("%w: checkpoint signed by %s", ErrUntrusted, id)
	}
	if !ed25519.Verify(raw[keyAt:sigAt], checkpointMessage(digest, raw[bodyAt:]), raw[sigAt:bodyAt]) {
		return nil, fmt.Errorf("%w: checkpoint: signature of %s does not verify", ErrBadSeal, id)
	}
	cp := &checkpoint{raw: raw, digest: digest, signer: id, entries: make([]checkpointEntry, n)}
	for i := range cp.entries {
		e := raw[checkpointHeaderLen+i*checkpointEntryLen:]
		cp.entries[i].PN = binary.BigEndian.Uint64(e)
		copy(cp.entries[i].Hash[:], e[8:checkpointEntryLen])
	}
	return cp, nil
}

// checkpointLog keeps the checkpoints a node received for its live
// recordings, so that it passes them on to its own clients with the
// packets they name, rather than signing those packets itself.
type checkpointLog struct {
	mu   sync.Mutex
	keys map[string]*keyCheckpoints
	tick uint64 // orders keys by last use, to drop the oldest
}

type keyCheckpoints struct {
	byPN  map[uint64]*checkpoint
	order []uint64 // packet numbers in the order added: the oldest go first
	used  uint64
}

// add keeps cp for key.
func (l *checkpointLog) add(key string, cp *checkpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*keyCheckpoints{}
	}
	k := l.keys[key]
	if k == nil {
		if len(l.keys) >= checkpointKeys {
			l.dropOldestLocked()
		}
		k = &keyCheckpoints{byPN: map[uint64]*checkpoint{}}
		l.keys[key] = k
	}
	l.tick++
	k.used = l.tick
	for _, e := range cp.entries {
		if _, ok := k.byPN[e.PN]; !ok {
			k.order = append(k.order, e.PN)
		}
		k.byPN[e.PN] = cp
	}
	if over := len(k.order) - relayedCheckpoints; over > 0 {
		for _, pn := range k.order[:over] {
			delete(k.byPN, pn)
		}
		k.order = append(k.order[:0], k.order[over:]...)
	}
}

func (l *checkpointLog) dropOldestLocked() {
	var oldest string
	var at uint64
	for key, k := range l.keys {
		if oldest == "" || k.used < at {
			oldest, at = key, k.used
		}
	}
	delete(l.keys, oldest)
}

// find returns the checkpoint received for key that names packet pn with
// record hash h, signed over digest; nil when there is none.
func (l *checkpointLog) find(key string, digest store.Hash, pn uint64, h store.Hash) *checkpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keys[key]
	if k == nil {
		return nil
	}
	cp := k.byPN[pn]
	if cp == nil || cp.digest != digest {
		return nil
	}
	for _, e := range cp.entries {
		if e.PN == pn {
			if e.Hash == h {
				return cp
			}
			return nil
		}
	}
	return nil
}

// liveSigner is a tail's side of checkpoints (a live recording's, or an
// on-demand recording's open segment): for each packet it sends, the
// checkpoint it received for it (sent before the packet), else its own,
// signed over the packets it names when the tail flushes.
type liveSigner struct {
	m       *Mesh
	key     string
	digest  store.Hash
	pending []checkpointEntry // sent, named by no checkpoint yet
	last    *checkpoint       // the received checkpoint sent last
	signed  time.Time         // when this node last signed one
	cp      []byte            // the frame flush signs, reused
	frame   []byte            // what send buffers for a packet, reused
	pkt     []byte            // send's packet frame, reused
}

// flusher is the tailFlusher of a tail that writes to w, gathering for
// batch after each write: every flush carries this node's checkpoint of
// the packets pending when one is due.
func (s *liveSigner) flusher(w answerWriter, batch time.Duration) *tailFlusher {
	return &tailFlusher{bw: w.bw, batch: batch,
		flush: func() error { return s.flush(w, false) },
		due:   func() time.Duration { return s.due(time.Now()) }}
}

// flush writes out what w buffered, after this node's checkpoint of the
// packets pending when one is due (or all is true).
func (s *liveSigner) flush(w answerWriter, all bool) error {
	if err := s.buffer(w, all); err != nil {
		return err
	}
	return w.flush()
}

// buffer buffers this node's checkpoint of the packets pending, when one
// is due (or all is true), without flushing.
func (s *liveSigner) buffer(w answerWriter, all bool) error {
	if s.cp = s.sign(s.cp[:0], time.Now(), all); len(s.cp) > 0 {
		return w.buffer(s.cp)
	}
	return nil
}

// send buffers packet p's frame for w, after pre (frames the client must
// have before it, such as its track's clock) and the checkpoint received
// for it, if any. Once the packets pending fill a checkpoint, this node's
// own follows them; it is sent with the next flush, which the tail's
// flusher does when no packet is there at once.
func (s *liveSigner) send(w answerWriter, pre []byte, p *store.Packet) error {
	s.pkt = appendPacket(s.pkt[:0], p)
	s.frame = s.packet(append(s.frame[:0], pre...), p, s.pkt[packetHeaderLen:])
	s.frame = append(s.frame, s.pkt...)
	if err := w.buffer(s.frame); err != nil {
		return err
	}
	s.m.bytesOut.Add(uint64(len(p.RTP)))
	if s.full() {
		return s.buffer(w, true)
	}
	return nil
}

// packet returns what must go before packet p's frame, whose record is
// rec: a received checkpoint that names it, or nothing (the packet then
// waits for this node's own, from flushing).
func (s *liveSigner) packet(b []byte, p *store.Packet, rec []byte) []byte {
	h := store.Hash(sha256.Sum256(rec))
	if cp := s.m.checkpoints.find(s.key, s.digest, p.PN, h); cp != nil {
		if cp != s.last {
			s.last = cp
			b = append(b, cp.raw...)
		}
		return b
	}
	s.pending = append(s.pending, checkpointEntry{PN: p.PN, Hash: h})
	return b
}

// full reports whether the packets pending fill a checkpoint.
func (s *liveSigner) full() bool { return len(s.pending) >= MaxCheckpointPackets }

// due is how long from now until the packets pending are to be signed;
// 0 when none are pending, negative when they are due.
func (s *liveSigner) due(now time.Time) time.Duration {
	if len(s.pending) == 0 {
		return 0
	}
	if d := CheckpointEvery - now.Sub(s.signed); d > 0 {
		return d
	}
	return -1
}

// sign appends this node's checkpoint of the packets pending, if any, and
// CheckpointEvery has passed since the last one, or all is true.
func (s *liveSigner) sign(b []byte, now time.Time, all bool) []byte {
	if len(s.pending) == 0 || (!all && now.Sub(s.signed) < CheckpointEvery) {
		return b
	}
	b = appendCheckpoint(b, s.m.signer, s.digest, s.pending)
	s.pending, s.signed = s.pending[:0], now
	return b
}

// liveHold is the client side of checkpoints of a live fill, or of a fill
// relayed an on-demand recording's open segment: it holds each packet
// frame (and the clock or seal frames behind it, in order) until a verified
// checkpoint names the packet's number and record hash, and hands on
// frames in their order once every packet before them is verified.
type liveHold struct {
	t      *trust
	digest store.Hash
	key    string
	log    *checkpointLog // where verified checkpoints go, to be passed on
	ahead  map[uint64]store.Hash
	order  []uint64 // ahead's numbers in the order named, to bound it
	held   []heldFrame
}

type heldFrame struct {
	r      received
	packet bool
	ok     bool // a packet a checkpoint named
	pn     uint64
	hash   store.Hash
	at     time.Time
}

// checkpoint verifies checkpoint frame raw and marks the packets it names.
func (v *liveHold) checkpoint(raw []byte) error {
	cp, err := v.t.verifyCheckpoint(v.digest, raw)
	if err != nil {
		return err
	}
	v.log.add(v.key, cp)
	if v.ahead == nil {
		v.ahead = map[uint64]store.Hash{}
	}
	for _, e := range cp.entries {
		if _, ok := v.ahead[e.PN]; !ok {
			v.order = append(v.order, e.PN)
		}
		v.ahead[e.PN] = e.Hash
	}
	if over := len(v.order) - relayedCheckpoints; over > 0 {
		for _, pn := range v.order[:over] {
			delete(v.ahead, pn)
		}
		v.order = append(v.order[:0], v.order[over:]...)
	}
	return v.match()
}

// packet holds packet frame r (its record in r.data), received at now.
func (v *liveHold) packet(r received, now time.Time) error {
	p, err := store.DecodeRecord(r.data)
	if err != nil {
		return fmt.Errorf("%w: relayed packet: %w", ErrBadSegment, err)
	}
	v.held = append(v.held, heldFrame{r: r, packet: true, pn: p.PN, hash: sha256.Sum256(r.data), at: now})
	if len(v.held) > maxHeld {
		return fmt.Errorf("%w: %d relayed packets and no checkpoint names them", ErrBadSeal, len(v.held))
	}
	return v.match()
}

// other holds frame r behind the packets held, if any; false when nothing
// is held and r can go on at once.
func (v *liveHold) other(r received) bool {
	if len(v.held) == 0 {
		return false
	}
	v.held = append(v.held, heldFrame{r: r})
	return true
}

// match marks the held packets that a checkpoint names; a packet whose
// number a checkpoint names with another hash is forged.
func (v *liveHold) match() error {
	for i := range v.held {
		f := &v.held[i]
		if !f.packet || f.ok {
			continue
		}
		h, named := v.ahead[f.pn]
		if !named {
			continue
		}
		if h != f.hash {
			return fmt.Errorf("%w: relayed packet %d is not the one its checkpoint names", ErrBadSeal, f.pn)
		}
		f.ok = true
		delete(v.ahead, f.pn)
	}
	return nil
}

// ready returns the frames that can go on, in order: those up to the first
// packet no checkpoint named yet.
func (v *liveHold) ready() []received {
	n := 0
	for n < len(v.held) && (!v.held[n].packet || v.held[n].ok) {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]received, n)
	for i := range out {
		out[i] = v.held[i].r
	}
	v.held = append(v.held[:0], v.held[n:]...)
	return out
}

// overdue fails when the oldest packet held has waited CheckpointWait for
// its checkpoint. A nil hold holds nothing.
func (v *liveHold) overdue(now time.Time) error {
	if v != nil && len(v.held) > 0 && now.Sub(v.held[0].at) > CheckpointWait {
		return fmt.Errorf("%w: relayed packet %d: no checkpoint named it within %v", ErrBadSeal, v.held[0].pn, CheckpointWait)
	}
	return nil
}

// deadline is the read deadline for the next frame: stall, or sooner when
// a packet held would be overdue before then (a relay that sends nothing
// more does not keep a packet held past CheckpointWait).
func (v *liveHold) deadline(stall time.Time) time.Time {
	if v == nil || len(v.held) == 0 {
		return stall
	}
	if due := v.held[0].at.Add(CheckpointWait + time.Millisecond); due.Before(stall) {
		return due
	}
	return stall
}
