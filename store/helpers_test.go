package store

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// streamSpec describes a synthetic stream: video at fps with a key frame every
// gop frames, each frame split into pktsPerFrame packets of size bytes, plus
// (when audio) one audio packet per video frame.
type streamSpec struct {
	fps          int
	gop          int
	pktsPerFrame int
	size         int
	audio        bool
	videoOff     bool // audio only
}

var defaultSpec = streamSpec{fps: 25, gop: 50, pktsPerFrame: 4, size: 1300, audio: true}

// synth returns the packets of spec for dur of media. A packet's RTP carries
// its pn in bytes 4..12 so content can be checked.
func synth(spec streamSpec, dur time.Duration) []Packet {
	var out []Packet
	var pn uint64
	frameDur := time.Second / time.Duration(spec.fps)
	for f := 0; time.Duration(f)*frameDur < dur; f++ {
		tt := time.Duration(f) * frameDur
		if !spec.videoOff {
			for i := 0; i < spec.pktsPerFrame; i++ {
				p := Packet{Track: 0, TT: tt, FT: FrameP, PN: pn, RTP: rtpFor(pn, spec.size)}
				if f%spec.gop == 0 {
					p.FT = FrameKey
					if i == 0 {
						p.Flags = FlagKeyStart
					}
				}
				out = append(out, p)
				pn++
			}
		}
		if spec.audio || spec.videoOff {
			track := uint8(1)
			if spec.videoOff {
				track = 0
			}
			out = append(out, Packet{Track: track, TT: tt + frameDur/2, PN: pn, RTP: rtpFor(pn, 200)})
			pn++
		}
	}
	return out
}

func rtpFor(pn uint64, size int) []byte {
	b := make([]byte, size)
	b[0] = 0x80
	binary.BigEndian.PutUint64(b[4:], pn)
	for i := 12; i < size; i++ {
		b[i] = byte(pn) + byte(i)
	}
	return b
}

func avTracks() []Track {
	return []Track{
		{Control: "trackID=0", Media: "video", PayloadType: 96, ClockRate: 90000, Codec: "H264"},
		{Control: "trackID=1", Media: "audio", PayloadType: 97, ClockRate: 48000, Codec: "MPEG4-GENERIC"},
	}
}

func memStore(t testing.TB, opts Options) *Store {
	t.Helper()
	opts.InMemory = true
	s, err := Open("", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// record stores packets under key and finishes it with st.
func record(t testing.TB, s *Store, key string, packets []Packet, st State) {
	t.Helper()
	w, err := s.Create(Manifest{Key: key, Tracks: avTracks(), SDP: []byte("v=0\r\n"), Source: "origin"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packets {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(st); err != nil {
		t.Fatal(err)
	}
}

// readAll reads r to io.EOF.
func readAll(t testing.TB, r *Reader) []Packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []Packet
	for {
		p, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("after %d packets: %v", len(out), err)
		}
		p.RTP = append([]byte(nil), p.RTP...)
		out = append(out, p)
	}
}

func samePacket(a, b Packet) bool {
	return a.Track == b.Track && a.TT == b.TT && a.FT == b.FT && a.PN == b.PN && a.Flags == b.Flags && string(a.RTP) == string(b.RTP)
}

func checkPackets(t testing.TB, got, want []Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range got {
		if !samePacket(got[i], want[i]) {
			t.Fatalf("packet %d: got track %d tt %v pn %d flags %d len %d; want track %d tt %v pn %d flags %d len %d",
				i, got[i].Track, got[i].TT, got[i].PN, got[i].Flags, len(got[i].RTP),
				want[i].Track, want[i].TT, want[i].PN, want[i].Flags, len(want[i].RTP))
		}
	}
}
