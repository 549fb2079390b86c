package metainfo

// Tracker classifies the packets of one video track in order and marks exactly
// one key start per key access unit: the first packet of an access unit whose
// packets can start a key frame (so SPS/PPS sent ahead of the IDR carry the
// mark, the IDR after them does not). Continuation fragments take the frame
// type of their access unit. An access unit ends at a packet with the marker
// bit or where the RTP timestamp changes. The zero value needs Classify.
type Tracker struct {
	// Classify is FrameTypeH264, FrameTypeH265 or FrameTypeMJPEG.
	Classify func(payload []byte) (ft uint16, keyStart bool)

	started    bool
	ts         uint32
	lastMarker bool
	marked     bool   // this access unit already has its key start
	auFT       uint16 // frame type of this access unit so far
}

// Next classifies the next packet of the track.
func (t *Tracker) Next(payload []byte, timestamp uint32, marker bool) (ft uint16, keyStart bool) {
	if !t.started || t.lastMarker || timestamp != t.ts {
		t.marked = false
		t.auFT = FrameUnknown
	}
	t.started, t.ts, t.lastMarker = true, timestamp, marker

	ft, ks := t.Classify(payload)
	if ks && !t.marked {
		keyStart, t.marked = true, true
	}
	switch {
	case ft == FrameKey:
		t.auFT = FrameKey
	case t.auFT != FrameUnknown:
		ft = t.auFT
	default:
		t.auFT = ft
	}
	return ft, keyStart
}
