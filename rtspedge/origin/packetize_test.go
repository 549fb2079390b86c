package origin

import (
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
)

func TestSampleClipSize(t *testing.T) {
	if n := len(SampleClip()); n == 0 || n > 3<<20 {
		t.Fatalf("sample clip is %d bytes, want 1..3 MiB", n)
	}
}

func TestPacketizeSample(t *testing.T) {
	c, err := Packetize(SampleClip())
	if err != nil {
		t.Fatal(err)
	}
	if c.Tracks() != 2 {
		t.Fatalf("%d tracks, want video + audio", c.Tracks())
	}
	if c.Duration < 19*time.Second || c.Duration > 21*time.Second {
		t.Fatalf("duration %v, want about 20 s", c.Duration)
	}
	var keys []time.Duration
	var lastTT time.Duration
	var lastTS [2]uint32
	var lastSeq [2]uint16
	seen := [2]bool{}
	for i, p := range c.Packets {
		if p.PN != uint64(i) {
			t.Fatalf("packet %d has pn %d", i, p.PN)
		}
		if p.TT < lastTT || p.TT%time.Millisecond != 0 {
			t.Fatalf("packet %d: tt %v after %v (want ascending whole ms)", i, p.TT, lastTT)
		}
		lastTT = p.TT
		var h rtp.Packet
		if err := h.Unmarshal(p.RTP); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		tr := p.Track
		if seen[tr] {
			if h.SequenceNumber != lastSeq[tr]+1 {
				t.Fatalf("packet %d: seq %d after %d", i, h.SequenceNumber, lastSeq[tr])
			}
			if d := int32(h.Timestamp - lastTS[tr]); d < 0 {
				t.Fatalf("packet %d: timestamp goes back by %d", i, -d)
			}
		}
		seen[tr], lastSeq[tr], lastTS[tr] = true, h.SequenceNumber, h.Timestamp
		if tr == 1 {
			if p.FT != 0 || p.KeyStart {
				t.Fatalf("audio packet %d has ft %d key %v", i, p.FT, p.KeyStart)
			}
			continue
		}
		// The derived classification agrees with the packetizer's, and the
		// packet starting a key access unit is the first of its AU.
		if p.FT != metainfo.FrameKey && p.FT != metainfo.FrameP {
			t.Fatalf("video packet %d: ft %d, want key or P (baseline)", i, p.FT)
		}
		if p.KeyStart {
			keys = append(keys, p.TT)
			if ft, ks := metainfo.FrameTypeH264(h.Payload); ft != metainfo.FrameKey || !ks {
				t.Fatalf("key start packet %d classifies as %d, %v", i, ft, ks)
			}
		}
	}
	if len(keys) != 20 {
		t.Fatalf("%d key frames, want 20 (one per second)", len(keys))
	}
	for i := 1; i < len(keys); i++ {
		if d := keys[i] - keys[i-1]; d != time.Second {
			t.Fatalf("key frames %v apart, want 1 s", d)
		}
	}
	// The seek helpers land on key starts.
	for _, tc := range []struct {
		at   time.Duration
		want time.Duration
	}{{0, 0}, {keys[0], keys[0]}, {10 * time.Second, keys[9]}, {keys[10] - time.Millisecond, keys[9]}, {time.Hour, keys[19]}} {
		n := c.seek(tc.at)
		if got := c.Packets[n].TT; got != tc.want {
			t.Fatalf("seek(%v) at tt %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestPacketizeRejects(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":   nil,
		"garbage": []byte("this is not an MPEG transport stream at all, just text"),
		"audio only prefix": func() []byte {
			b := SampleClip()
			return b[:188*3] // PAT/PMT but no access unit
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Packetize(in); err == nil {
				t.Fatal("Packetize accepted it")
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	sample := map[string][]byte{"a.ts": SampleClip()}
	for name, cfg := range map[string]Config{
		"nothing":     {Listen: "127.0.0.1:0"},
		"bad file":    {Listen: "127.0.0.1:0", Media: map[string][]byte{"x.ts": []byte("nope")}},
		"udp half":    {Listen: "127.0.0.1:0", Media: sample, UDPRTPAddress: "127.0.0.1:0"},
		"speed":       {Listen: "127.0.0.1:0", Media: sample, MaxSpeed: 0.5},
		"path twice":  {Listen: "127.0.0.1:0", Media: sample, Live: map[string][]byte{"/a.ts": SampleClip()}},
		"missing dir": {Listen: "127.0.0.1:0", MediaDir: "/nonexistent-dir-for-test"},
		"bad listen":  {Listen: "127.0.0.1:notaport", Media: sample},
		"empty path":  {Listen: "127.0.0.1:0", Media: map[string][]byte{"/": SampleClip()}},
	} {
		t.Run(name, func(t *testing.T) {
			o, err := New(cfg)
			if err == nil {
				o.Close()
				t.Fatal("New accepted it")
			}
		})
	}
}
