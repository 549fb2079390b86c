package testkit

import (
	"fmt"

	"github.com/pion/rtp"
)

// SameRTP returns an error unless got holds the RTP packets of one track
// as want does: as many, with payloads, markers and payload types alike
// and in order, sequence numbers and timestamps that step alike from the
// first packet, and one SSRC. Two pulls of one stream from an origin
// (each session with its own bases) compare equal this way.
func SameRTP(got, want [][]byte) error {
	var g0, w0 rtp.Header
	for i := range min(len(got), len(want)) {
		var g, w rtp.Packet
		if err := g.Unmarshal(got[i]); err != nil {
			return fmt.Errorf("packet %d: %w", i, err)
		}
		if err := w.Unmarshal(want[i]); err != nil {
			return fmt.Errorf("packet %d of the reference: %w", i, err)
		}
		if i == 0 {
			g0, w0 = g.Header, w.Header
		}
		switch {
		case string(g.Payload) != string(w.Payload):
			return fmt.Errorf("packet %d of %d: a payload of %d bytes, want %d bytes alike", i, len(want), len(g.Payload), len(w.Payload))
		case g.Marker != w.Marker || g.PayloadType != w.PayloadType:
			return fmt.Errorf("packet %d: marker %v payload type %d, want %v %d", i, g.Marker, g.PayloadType, w.Marker, w.PayloadType)
		case g.SequenceNumber-g0.SequenceNumber != w.SequenceNumber-w0.SequenceNumber:
			return fmt.Errorf("packet %d: sequence number %d after the first, want %d", i, g.SequenceNumber-g0.SequenceNumber, w.SequenceNumber-w0.SequenceNumber)
		case g.Timestamp-g0.Timestamp != w.Timestamp-w0.Timestamp:
			return fmt.Errorf("packet %d: timestamp %d after the first, want %d", i, g.Timestamp-g0.Timestamp, w.Timestamp-w0.Timestamp)
		case g.SSRC != g0.SSRC:
			return fmt.Errorf("packet %d: SSRC %08x, the first's %08x", i, g.SSRC, g0.SSRC)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d packets, want %d", len(got), len(want))
	}
	return nil
}
