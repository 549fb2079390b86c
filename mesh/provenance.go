package mesh

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/rtspmesh/rtspmesh/store"
)

// Provenance (doc.go, "Provenance"): the node that pulls a recording from its
// origin signs each segment it seals and the recording's end; relays pass the
// signatures on unchanged and every receiver verifies them.

// Seal and end seal layouts.
const (
	sealVersion = 1
	endSealLen  = 1 + ed25519.PublicKeySize + ed25519.SignatureSize
)

// Domain separation of the signed messages.
const (
	headerDomain = "rtspmesh/header/1\x00"
	segDomain    = "rtspmesh/segment/1\x00"
	endDomain    = "rtspmesh/end/1\x00"
)

// Provenance errors; test with errors.Is.
var (
	// ErrBadSeal: a segment or end came with a missing or invalid
	// signature, or out of its signed chain.
	ErrBadSeal = errors.New("mesh: bad provenance signature")
	// ErrUntrusted: content signed (or a live stream relayed) by a peer this
	// node does not trust.
	ErrUntrusted = errors.New("mesh: signer not trusted")
	// ErrUnsigned (with ErrBadSeal): a segment with no seal at all, as a
	// node stored it before provenance existed: refused, but no lie.
	ErrUnsigned = errors.New("mesh: not signed")
)

// HeaderDigest is the SHA-256 of what a signature vouches for in a
// manifest: key, SDP, tracks (without their clocks), live and freshness.
// Every seal of the recording signs it. The classification's reason is left
// out: it is only said in the admin API, and the origin session rewrites it
// when its PLAY answer arrives, after a neighbour tailing the fill from its
// start may have been sent the manifest.
func HeaderDigest(m *store.Manifest) store.Hash {
	b := make([]byte, 0, 256+len(m.SDP)+len(m.Key))
	str := func(s []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = append(b, headerDomain...)
	str([]byte(m.Key))
	str(m.SDP)
	live := byte(0)
	if m.Live {
		live = 1
	}
	b = append(b, live)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Tracks)))
	for _, t := range m.Tracks {
		str([]byte(t.Control))
		str([]byte(t.Media))
		b = append(b, t.PayloadType)
		b = binary.BigEndian.AppendUint32(b, t.ClockRate)
		str([]byte(t.Codec))
	}
	f := &m.Freshness
	str([]byte(f.CacheControl))
	str([]byte(f.Expires))
	str([]byte(f.LastModified))
	var fetched uint64
	if !f.FetchedAt.IsZero() {
		fetched = uint64(f.FetchedAt.UnixNano())
	}
	b = binary.BigEndian.AppendUint64(b, fetched)
	return sha256.Sum256(b)
}

// segMessage is what a segment's seal signs.
func segMessage(digest store.Hash, index uint32, h, prev store.Hash) []byte {
	b := make([]byte, 0, len(segDomain)+32+4+32+32)
	b = append(b, segDomain...)
	b = append(b, digest[:]...)
	b = binary.BigEndian.AppendUint32(b, index)
	b = append(b, h[:]...)
	return append(b, prev[:]...)
}

// endMessage is what an end seal signs.
func endMessage(digest store.Hash, next uint32, last store.Hash, state byte, d uint64) []byte {
	b := make([]byte, 0, len(endDomain)+32+4+32+1+8)
	b = append(b, endDomain...)
	b = append(b, digest[:]...)
	b = binary.BigEndian.AppendUint32(b, next)
	b = append(b, last[:]...)
	b = append(b, state)
	return binary.BigEndian.AppendUint64(b, d)
}

// endState is the end frame state a manifest's end seal signs.
func endState(m *store.Manifest) byte {
	if m.Live && m.Ended {
		return endLive
	}
	return endComplete
}

// signer signs with the node's identity key; it is the store.Sealer of the
// recordings this node fills.
type signer struct {
	priv ed25519.PrivateKey
	pub  [ed25519.PublicKeySize]byte
}

func newSigner(k crypto.PrivKey) (*signer, error) {
	raw, err := k.Raw()
	if err != nil || k.Type() != crypto.Ed25519 || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity key is not Ed25519 (%v): cannot sign provenance", k.Type())
	}
	s := &signer{priv: ed25519.PrivateKey(raw)}
	copy(s.pub[:], s.priv.Public().(ed25519.PublicKey))
	return s, nil
}

// SealSegment implements store.Sealer.
func (s *signer) SealSegment(m *store.Manifest, si *store.SegmentInfo, prev store.Hash) (store.Seal, error) {
	var seal store.Seal
	seal[0] = sealVersion
	copy(seal[1:33], s.pub[:])
	copy(seal[33:65], prev[:])
	copy(seal[65:], ed25519.Sign(s.priv, segMessage(HeaderDigest(m), si.Index, si.Hash, prev)))
	return seal, nil
}

// SealEnd implements store.Sealer.
func (s *signer) SealEnd(m *store.Manifest, next uint32, last store.Hash) ([]byte, error) {
	b := make([]byte, 0, endSealLen)
	b = append(b, sealVersion)
	b = append(b, s.pub[:]...)
	msg := endMessage(HeaderDigest(m), next, last, endState(m), uint64(max(m.Duration, 0)))
	return append(b, ed25519.Sign(s.priv, msg)...), nil
}

// Sealer is the store.Sealer that signs with this node's identity: set it
// on every writer that fills from the origin (or seals relayed packets).
func (m *Mesh) Sealer() store.Sealer { return m.signer }

// trust is which signers a node accepts content from.
type trust struct {
	self peer.ID
	any  bool             // every signer (a private mesh's members, a loopback-only mesh)
	ids  map[peer.ID]bool // else these
	why  string           // for the log: which rule applies
}

// newTrust applies the rule of doc.go "Provenance": TrustedSigners, else
// AllowPeers, else with a PSK every member, else on loopback only every
// signer, else nobody but the node itself.
func newTrust(cfg Config, self peer.ID) (*trust, error) {
	t := &trust{self: self, ids: map[peer.ID]bool{}}
	list := cfg.TrustedSigners
	t.why = "trusted_signers"
	if len(list) == 0 {
		list, t.why = cfg.AllowPeers, "allow_peers"
	}
	for _, s := range list {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("trusted signer %q: %w", s, err)
		}
		t.ids[id] = true
	}
	switch {
	case len(list) > 0:
	case cfg.PSKFile != "":
		t.any, t.why = true, "private mesh members"
	case LoopbackOnly(cfg.Listen):
		t.any, t.why = true, "loopback-only mesh"
	default:
		t.why = "none (open mesh: set trusted_signers or allow_peers)"
	}
	return t, nil
}

// trusts reports whether content signed by id is accepted.
func (t *trust) trusts(id peer.ID) bool { return id == t.self || t.any || t.ids[id] }

// LoopbackOnly reports whether every listen address is a loopback one.
func LoopbackOnly(listen []string) bool {
	if len(listen) == 0 {
		return false
	}
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return false
		}
		ip, err := manet.ToIP(a)
		if err != nil || !ip.IsLoopback() || ip.Equal(net.IPv4zero) {
			return false
		}
	}
	return true
}

// signerID is the peer id of an Ed25519 public key.
func signerID(pub []byte) (peer.ID, error) {
	k, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(k)
}

// verifySeal checks segment index (hash h) of the recording whose header
// digest is digest: the seal's version, its signer trusted, its previous
// hash equal to prev when known (prev nil: the first segment of a live
// window), and its signature. It returns the signer.
func (t *trust) verifySeal(digest store.Hash, index uint32, h store.Hash, prev *store.Hash, seal *store.Seal) (peer.ID, error) {
	if seal.IsZero() {
		return "", fmt.Errorf("%w: segment %d: %w", ErrBadSeal, index, ErrUnsigned)
	}
	if seal[0] != sealVersion {
		return "", fmt.Errorf("%w: segment %d: seal version %d", ErrBadSeal, index, seal[0])
	}
	id, err := signerID(seal[1:33])
	if err != nil {
		return "", fmt.Errorf("%w: segment %d: signer key: %v", ErrBadSeal, index, err)
	}
	if !t.trusts(id) {
		return id, fmt.Errorf("%w: segment %d signed by %s", ErrUntrusted, index, id)
	}
	var sp store.Hash
	copy(sp[:], seal[33:65])
	if prev != nil && sp != *prev {
		return id, fmt.Errorf("%w: segment %d does not follow the previous one (chain broken)", ErrBadSeal, index)
	}
	if !ed25519.Verify(seal[1:33], segMessage(digest, index, h, sp), seal[65:]) {
		return id, fmt.Errorf("%w: segment %d: signature of %s does not verify", ErrBadSeal, index, id)
	}
	return id, nil
}

// verifyEnd checks an end seal: complete (or ended live) after next
// segments, the last of hash last, with duration d.
func (t *trust) verifyEnd(digest store.Hash, next uint32, last store.Hash, state byte, d uint64, seal []byte) (peer.ID, error) {
	if len(seal) != endSealLen || seal[0] != sealVersion {
		return "", fmt.Errorf("%w: the end is not signed", ErrBadSeal)
	}
	id, err := signerID(seal[1:33])
	if err != nil {
		return "", fmt.Errorf("%w: end signer key: %v", ErrBadSeal, err)
	}
	if !t.trusts(id) {
		return id, fmt.Errorf("%w: end signed by %s", ErrUntrusted, id)
	}
	if d > math.MaxInt64 || !ed25519.Verify(seal[1:33], endMessage(digest, next, last, state, d), seal[33:]) {
		return id, fmt.Errorf("%w: end (%d segments): signature of %s does not verify", ErrBadSeal, next, id)
	}
	return id, nil
}
