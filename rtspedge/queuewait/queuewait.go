// Package queuewait waits for gortsplib's per-session write queue to write
// what a server handed it.
//
// gortsplib v4.16.2 writes a server session's RTP packets from a queue of
// its own, and discards that queue once a PAUSE is answered: the packets
// still in it would be a hole in the stream that the resumed PLAY's
// RTP-Info does not account for. A server that resumes right after the
// last packet it handed over (a node's server over UDP, the built-in
// origin) answers a PAUSE only once the queue has written them.
package queuewait

import (
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// Drain waits until ss has written handed RTP packets since its SETUP
// (gortsplib's count of packets written), or within has passed; it
// returns how many were still unwritten (0: all of them). Normally it
// takes microseconds.
func Drain(ss *gortsplib.ServerSession, handed uint64, within time.Duration) (left uint64) {
	written := ss.Stats().RTPPacketsSent
	if written >= handed {
		return 0
	}
	deadline := time.Now().Add(within)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for written < handed && time.Now().Before(deadline) {
		<-tick.C
		written = ss.Stats().RTPPacketsSent
	}
	return handed - min(written, handed)
}
