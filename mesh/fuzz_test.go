package mesh

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// Seeds for the fill-protocol decoders (more are in testdata/fuzz).

func seedRequest() []byte {
	return appendRequest(nil, fillRequest{Key: "rtsp://origin.test:554/a.mp4", From: 7})
}

func seedAnswer() []byte {
	b, err := appendOK(nil, testManifest("rtsp://origin.test:554/a.mp4"))
	if err != nil {
		panic(err)
	}
	return b
}

func seedSegmentHeader() []byte {
	return appendSegmentHeader(nil, 3, store.Hash{1, 2, 3}, &store.Seal{sealVersion, 9}, 262144)
}

func seedEnd() []byte {
	return appendEnd(nil, frame{State: store.StateComplete, Index: 42, Duration: 10 * time.Minute})
}

func FuzzRequest(f *testing.F) {
	f.Add(seedRequest())
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 'a'})
	f.Add(appendRequest(nil, fillRequest{Key: "rtsp://u:p@h:554/x", From: 1}))
	f.Add(appendRequest(nil, fillRequest{Key: "rtsp://h:554/v.ts", From: 3, Open: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if checkKey(req.Key) != nil {
			t.Fatalf("accepted a bad key %q", req.Key)
		}
		if enc := appendRequest(nil, req); !bytes.HasPrefix(b, enc) {
			t.Fatalf("re-encoding %x is not the input's prefix %x", enc, b)
		}
	})
}

func FuzzAnswer(f *testing.F) {
	f.Add(seedAnswer())
	f.Add([]byte{statusNotFound})
	f.Add([]byte{statusOK, 0, 0, 0, 2, '{', '}'})
	f.Add([]byte{statusOK, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readAnswer(bytes.NewReader(b))
		if err != nil {
			if len(b) > 0 && b[0] == statusOK && errors.Is(err, ErrNotProvided) {
				t.Fatal("status OK read as not provided")
			}
			return
		}
		if m.Key == "" || len(m.Segments) != 0 || m.Packets != 0 || len(m.Tracks) > 256 {
			t.Fatalf("accepted manifest key %q segments %d tracks %d", m.Key, len(m.Segments), len(m.Tracks))
		}
		if n := binary.BigEndian.Uint32(b[1:5]); n > MaxManifestLen {
			t.Fatalf("accepted a manifest of %d bytes", n)
		}
	})
}

func FuzzSegmentHeader(f *testing.F) {
	f.Add(seedSegmentHeader())
	f.Add(appendSegmentHeader(nil, 0, store.Hash{}, &store.Seal{}, 0))
	f.Add(appendSegmentHeader(nil, 1, store.Hash{}, &store.Seal{}, MaxSegmentLen+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeSegmentHeader(b)
		if err != nil {
			return
		}
		if fr.Len == 0 || fr.Len > MaxSegmentLen {
			t.Fatalf("accepted segment length %d", fr.Len)
		}
		if enc := appendSegmentHeader(nil, fr.Index, fr.Hash, &fr.Seal, int(fr.Len)); !bytes.Equal(enc, b) {
			t.Fatalf("round trip %x != %x", enc, b)
		}
	})
}

func FuzzEndFrame(f *testing.F) {
	f.Add(seedEnd())
	f.Add(appendEnd(nil, frame{State: store.StatePartial}))
	f.Add(appendEnd(nil, frame{State: store.StatePartial, Ended: true, Index: 9}))
	f.Add([]byte{frameEnd, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(appendEnd(nil, frame{State: store.StateComplete, Index: 3, EndSeal: make([]byte, endSealLen)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		fr, err := readFrame(r)
		if err != nil || fr.Type != frameEnd || r.Len() != 0 {
			return
		}
		if fr.Duration < 0 || (fr.State != store.StateComplete && fr.State != store.StatePartial) {
			t.Fatalf("accepted end frame %+v", fr)
		}
		if enc := appendEnd(nil, fr); !bytes.Equal(enc, b) {
			t.Fatalf("round trip %x != %x", enc, b)
		}
	})
}

// FuzzFrames decodes a whole frame stream, as a client reads it.
func FuzzFrames(f *testing.F) {
	var s []byte
	s = append(s, frameKeepalive)
	s = appendSegmentHeader(s, 0, store.Hash{}, &store.Seal{}, 4)
	s = append(s, 1, 2, 3, 4)
	s = appendPacket(s, &store.Packet{Track: 0, TT: time.Second, PN: 9, RTP: []byte{0x80, 96, 0, 1}})
	s = appendClock(s, 0, store.Clock{RTP: 90000, NTP: time.Unix(1764600000, 5)})
	s = appendSealFrame(s, 0, store.Hash{1}, &store.Seal{1})
	s = append(s, seedCheckpoint()...)
	s = appendEnd(s, frame{State: store.StateComplete, Index: 1, Duration: time.Second})
	f.Add(s)
	f.Add(seedSegmentHeader())
	f.Add([]byte{0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			fr, err := readFrame(r)
			if err != nil {
				return
			}
			switch fr.Type {
			case frameSegment:
				if fr.Len > MaxSegmentLen {
					t.Fatalf("segment length %d", fr.Len)
				}
				if _, err := io.CopyN(io.Discard, r, int64(fr.Len)); err != nil {
					return
				}
			case framePacket:
				if fr.Len == 0 || fr.Len > store.MaxRecordBytes {
					t.Fatalf("packet record length %d", fr.Len)
				}
				rec := make([]byte, fr.Len)
				if _, err := io.ReadFull(r, rec); err != nil {
					return
				}
				if _, err := store.DecodeRecord(rec); err != nil && !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("record error is not ErrCorrupt: %v", err)
				}
			case frameEnd:
				return
			case frameClock:
				if fr.Clock.NTP.UnixNano() <= 0 {
					t.Fatalf("clock frame time %v", fr.Clock.NTP)
				}
			case frameCheckpoint:
				n := int(binary.BigEndian.Uint16(fr.Raw[checkpointHeaderLen-2:]))
				if n == 0 || n > MaxCheckpointPackets || len(fr.Raw) != checkpointHeaderLen+n*checkpointEntryLen {
					t.Fatalf("checkpoint of %d bytes names %d packets", len(fr.Raw), n)
				}
			case frameKeepalive, frameSeal:
			default:
				t.Fatalf("frame type %d", fr.Type)
			}
		}
	})
}

// seedSealInput is a valid input of FuzzSeal: header digest, index, hash,
// seal, signed by a fixed key.
func seedSealInput() []byte {
	k := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	s := &signer{priv: k}
	copy(s.pub[:], k.Public().(ed25519.PublicKey))
	m := testManifest("rtsp://origin.test:554/a.mp4")
	si := store.SegmentInfo{Index: 5, Hash: store.Hash{7}}
	seal, _ := s.SealSegment(&m, &si, store.Hash{6})
	d := HeaderDigest(&m)
	b := append([]byte(nil), d[:]...)
	b = binary.BigEndian.AppendUint32(b, si.Index)
	b = append(b, si.Hash[:]...)
	b = append(b, seal[:]...)
	end, _ := s.SealEnd(&m, 6, si.Hash)
	return append(b, end...)
}

// FuzzSeal decodes and verifies segment and end seals: any bytes from a
// peer give an answer, never a panic, and an accepted seal verifies.
func FuzzSeal(f *testing.F) {
	f.Add(seedSealInput())
	f.Add(make([]byte, 32+4+32+store.SealLen))
	f.Add([]byte{1})
	tr := &trust{any: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		const n = 32 + 4 + 32 + store.SealLen
		if len(b) < n {
			return
		}
		var digest, h, prev store.Hash
		var seal store.Seal
		copy(digest[:], b)
		index := binary.BigEndian.Uint32(b[32:])
		copy(h[:], b[36:68])
		copy(seal[:], b[68:n])
		copy(prev[:], seal[33:65])
		if _, err := tr.verifySeal(digest, index, h, nil, &seal); err == nil {
			if !ed25519.Verify(seal[1:33], segMessage(digest, index, h, prev), seal[65:]) {
				t.Fatal("accepted a seal whose signature does not verify")
			}
			if _, err := tr.verifySeal(digest, index+1, h, nil, &seal); err == nil {
				t.Fatal("a seal verified for another index")
			}
		}
		end := b[n:]
		if _, err := tr.verifyEnd(digest, index+1, h, endComplete, 0, end); err == nil && len(end) != endSealLen {
			t.Fatalf("accepted an end seal of %d bytes", len(end))
		}
	})
}

// seedCheckpoint is a checkpoint frame naming two packets, signed by a
// fixed key over the header digest of seedCheckpointManifest.
func seedCheckpoint() []byte {
	k := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	s := &signer{priv: k}
	copy(s.pub[:], k.Public().(ed25519.PublicKey))
	m := testManifest("rtsp://origin.test:554/live")
	return appendCheckpoint(nil, s, HeaderDigest(&m), []checkpointEntry{{PN: 7, Hash: store.Hash{7}}, {PN: 8, Hash: store.Hash{8}}})
}

// FuzzCheckpoint reads and verifies checkpoint frames: any bytes from a
// peer give an answer, never a panic; an accepted checkpoint's signature
// verifies over what it names, and not over another stream's digest.
func FuzzCheckpoint(f *testing.F) {
	f.Add(seedCheckpoint())
	f.Add([]byte{frameCheckpoint, 1})
	tr := &trust{any: true}
	m := testManifest("rtsp://origin.test:554/live")
	digest := HeaderDigest(&m)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != frameCheckpoint {
			return
		}
		raw, err := readCheckpoint(bytes.NewReader(b[1:]))
		if err != nil {
			return
		}
		cp, err := tr.verifyCheckpoint(digest, raw)
		if err != nil {
			return
		}
		if len(cp.entries) == 0 || len(cp.entries) > MaxCheckpointPackets {
			t.Fatalf("accepted a checkpoint naming %d packets", len(cp.entries))
		}
		if !ed25519.Verify(raw[2:34], checkpointMessage(digest, raw[checkpointHeaderLen-2:]), raw[34:98]) {
			t.Fatal("accepted a checkpoint whose signature does not verify")
		}
		if _, err := tr.verifyCheckpoint(store.Hash{1}, raw); err == nil {
			t.Fatal("a checkpoint verified for another stream")
		}
	})
}
