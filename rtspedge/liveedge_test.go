package rtspedge

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/store"
)

// TestLivePlayBeforeFirstPacket: a player that PLAYs a live recording before
// its first packet is stored gets packets as they arrive, even though their
// tt is the origin's running time (a minute in), not 0.
func TestLivePlayBeforeFirstPacket(t *testing.T) {
	st := newStore(t)
	w, err := st.Create(store.Manifest{Key: "live", SDP: []byte(synthSDP), Live: true,
		Tracks: []store.Track{{Control: "trackID=0", Media: "video", PayloadType: 96, ClockRate: 90000, Codec: "H264"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finish(store.StatePartial)
	s := startServer(t, ServerConfig{Listen: "127.0.0.1:0", Recordings: newTestRecordings(t, st)})
	p := newTestPlayer(t, serverURL(s, "live"), gortsplib.TransportTCP)

	// The live source: a key frame every 25 frames at 25 fps, from tt 60 s,
	// on its own clock, starting after the player's PLAY went out.
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for f := 0; f < 75; f++ {
			<-tick.C
			payload := []byte{0x60 | 5, 0xAA, byte(f)}
			pk := store.Packet{TT: time.Minute + time.Duration(f)*40*time.Millisecond, PN: uint64(f)}
			if f%25 == 0 {
				pk.FT, pk.Flags = store.FrameKey, store.FlagKeyStart
			} else {
				payload[0] = 0x60 | 1
			}
			raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(f),
				Timestamp: uint32(f * 3600), SSRC: 1, Marker: true}, Payload: payload}).Marshal()
			if err == nil {
				pk.RTP = raw
				err = w.Append(pk)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	start := time.Now()
	p.play(t, nil)
	got := p.waitPackets(t, 10, 2*time.Second)
	if len(got) < 10 {
		t.Fatalf("%d packets within 2 s of PLAY", len(got))
	}
	t.Logf("first 10 live packets %v after PLAY", time.Since(start))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
