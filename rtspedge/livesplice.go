package rtspedge

import (
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// keyWaitMax bounds how long a spliced live session drops packets while it
// waits for the first key frame of its video (an origin whose key frames we
// cannot see must not starve the recording).
const keyWaitMax = 10 * time.Second

// liveSplice re-bases the packets of a live session whose recording already
// has packets (store.Splice: tt, packet numbers and each track's RTP
// timestamps continue the recording where its writer says it stops,
// whoever appended before: an earlier session, or peers). Packets are
// dropped until the first key frame of a video track whose frames can be
// classified (for at most keyWaitMax after PLAY), so the continuation
// decodes on its own.
type liveSplice struct {
	*store.Splice
	waitKey bool      // still dropping until a key frame
	waitEnd time.Time // stop waiting for a key frame then
}

func newLiveSplice(tail store.Tail, tracks []*originTrack) *liveSplice {
	rates := make([]uint32, len(tracks))
	s := &liveSplice{}
	for i, t := range tracks {
		rates[i] = t.clock
		if t.video && t.tracker != nil {
			s.waitKey = true
		}
	}
	s.Splice = store.NewSplice(tail, rates)
	return s
}

// start begins the wait for a key frame at the PLAY answer.
func (s *liveSplice) start(now time.Time) { s.waitEnd = now.Add(keyWaitMax) }

// rebase re-bases p, which arrived at now; p.RTP is the packet as received.
// Its number is shifted only when it is the origin's (originPN). It
// returns false for a packet to drop.
func (s *liveSplice) rebase(p *store.Packet, originPN bool, now time.Time) bool {
	if s.waitKey {
		if p.Flags&store.FlagKeyStart == 0 && now.Before(s.waitEnd) {
			return false
		}
		s.waitKey = false
	}
	s.Rebase(p, originPN, now)
	return true
}
