package rtspedge

import (
	"encoding/hex"
	"math/rand/v2"
	"time"

	"github.com/pion/rtcp"

	"github.com/rtspmesh/rtspmesh/store"
)

// srInterval is the mean interval between two sender reports of a track:
// RFC 3550's minimum RTCP interval (§6.2), randomised per report into
// [0.5, 1.5] × srInterval (§6.3.1).
const srInterval = 5 * time.Second

func nextReportIn() time.Duration { return srInterval/2 + rand.N(srInterval) }

// newCNAME is a session's RTCP canonical name: one per player, the same on
// every track, so the player knows its tracks belong together (lip sync).
func newCNAME() string {
	var b [8]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return "rtspmesh-" + hex.EncodeToString(b[:])
}

// Sender reports. A player's session has one timeline (session time s: the
// replay sends the packet of tt at wallStart + (tt - sNPT), which is session
// time sStart + (tt - sNPT)); each track's RTP time of session time s is
// init + s in clock ticks, continuous across PAUSE and seeks. A report at
// wall time now describes the session time s(now) = sStart + (now -
// wallStart):
//
//   - RTP timestamp: init + s(now) in ticks;
//   - NTP, live with the origin's mapping (store.Track.Clock, from its
//     sender reports): the origin's wall clock at the stored timestamp the
//     session's timestamp stands for (minus the PLAY's offset), so capture
//     time survives the cache;
//   - NTP otherwise (VOD, live before an origin report): the wall clock of
//     session time 0 plus s(now). PAUSE stops both clocks and a seek moves
//     both by the same step, so one line maps RTP to NTP for the whole
//     session.

// report sends each track's sender report that is due, as a compound SR +
// SDES CNAME, to a UDP player; false when the session is gone or too slow.
// It runs on the replay goroutine. (A TCP player's go with the batch of RTP
// they follow: appendReports.)
func (p *player) report(now time.Time) bool {
	for i, t := range p.tracks {
		if reportDue(t, now) && !p.writeRTCP(t, p.reportPacket(uint8(i), t, now), false) {
			return false
		}
	}
	return true
}

// reportDue reports whether track t's sender report is due at now, and if
// so schedules the next.
func reportDue(t *playTrack, now time.Time) bool {
	if !t.setup || !t.haveOff || now.Before(t.nextSR) {
		return false
	}
	t.nextSR = now.Add(nextReportIn())
	return true
}

// reportPacket is track i's (t's) report at now: its SR and SDES CNAME.
func (p *player) reportPacket(i uint8, t *playTrack, now time.Time) rtcp.CompoundPacket {
	return rtcp.CompoundPacket{p.senderReport(i, t, now), p.sdes(t)}
}

// appendReports appends each track's sender report that is due at now to
// buf, a TCP batch, as interleaved frames after the RTP they count: one
// write for both, where a report of its own was a write() of its own (a
// few % of a server's CPU with 500 players). It returns the buffer, how
// many reports it holds, and false when the session is gone or too slow
// (a full buffer is written first).
func (p *player) appendReports(buf []byte, now time.Time) ([]byte, uint64, bool) {
	var n uint64
	for i, t := range p.tracks {
		if !reportDue(t, now) {
			continue
		}
		f, ok := p.rtcpFrame(t, p.reportPacket(uint8(i), t, now))
		if !ok {
			continue
		}
		if len(buf) > 0 && len(buf)+len(f) > cap(buf) {
			if !p.writeFrames(buf) {
				return buf, n, false
			}
			p.s.reportsSent.Add(n)
			buf, n = buf[:0], 0
		}
		buf = append(buf, f...)
		n++
	}
	return buf, n, true
}

// senderReport is track t's sender report for wall time now.
func (p *player) senderReport(i uint8, t *playTrack, now time.Time) *rtcp.SenderReport {
	s := p.sStart + now.Sub(p.wallStart)
	ts := t.init + uint32(store.DurationToTicks(s, t.clock))
	ntp := p.ntpZero.Add(s)
	if p.m.Live && t.haveOff && p.reader != nil {
		if c, ok := p.reader.Clock(i); ok {
			stored := ts - t.off
			ntp = c.At(stored, t.clock)
		}
	}
	return &rtcp.SenderReport{
		SSRC:        t.ssrc,
		NTPTime:     ntpTime(ntp),
		RTPTime:     ts,
		PacketCount: t.packets,
		OctetCount:  t.octets,
	}
}

func (p *player) sdes(t *playTrack) *rtcp.SourceDescription {
	return &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: t.ssrc,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: p.cname}},
	}}}
}

// writeRTCP sends one compound RTCP packet of t: over TCP written to the
// connection after the RTP already written (on the channel after t's), over
// UDP handed to the session; false when the session is gone or too slow.
// Over UDP a full queue (sendUDP) drops a sender report (the next is due
// within srInterval), and the end's (final) is handed again every
// millisecond until the queue takes it: a player that misses the BYE plays
// on until it times out.
func (p *player) writeRTCP(t *playTrack, pkt rtcp.CompoundPacket, final bool) bool {
	if p.conn != nil {
		f, ok := p.rtcpFrame(t, pkt)
		if !ok {
			return true
		}
		if !p.writeFrames(f) {
			return false
		}
		p.s.reportsSent.Add(1)
		return true
	}
	for {
		err := p.ss.WritePacketRTCP(t.media, &pkt)
		switch {
		case err == nil:
			p.udpFullSince = time.Time{}
			p.s.reportsSent.Add(1)
			return true
		case !p.udpQueueFull(err):
			p.writeFailed(err)
			return false
		case !final:
			p.log.Debug("UDP queue full: sender report dropped")
			return true
		}
		time.Sleep(time.Millisecond) // gortsplib's queue tells no one when it has room (queuewait)
	}
}

// rtcpFrame is pkt, a compound RTCP packet of t, as an interleaved frame
// on the channel after t's; false (logged) when it cannot be one.
func (p *player) rtcpFrame(t *playTrack, pkt rtcp.CompoundPacket) ([]byte, bool) {
	b, err := pkt.Marshal()
	if err != nil || len(b) > 0xffff {
		p.log.Warn("RTCP packet not sent", "err", err, "bytes", len(b))
		return nil, false
	}
	return append([]byte{'$', byte(t.channel + 1), byte(len(b) >> 8), byte(len(b))}, b...), true
}

// sendBye tells the player the stream ended: on every track a compound of a
// last sender report, SDES CNAME and BYE, so that strict players (RFC 3550
// §6.1: every RTCP packet is a compound that starts with SR or RR) end.
func (p *player) sendBye() {
	now := time.Now()
	for i, t := range p.tracks {
		if !t.setup {
			continue
		}
		// The reason makes the BYE at least 12 bytes: FFmpeg ignores shorter
		// RTCP packets.
		bye := &rtcp.Goodbye{Sources: []uint32{t.ssrc}, Reason: "end of stream"}
		if !p.writeRTCP(t, append(p.reportPacket(uint8(i), t, now), bye), true) {
			return
		}
	}
}

// ntpTime is t in the 64-bit NTP format of RTCP: seconds since 1900 in the
// upper 32 bits, the fraction in the lower.
func ntpTime(t time.Time) uint64 {
	ns := uint64(t.UnixNano()) + ntpEpochOffset*uint64(time.Second)
	sec, frac := ns/uint64(time.Second), ns%uint64(time.Second)
	return sec<<32 | frac<<32/uint64(time.Second)
}

// timeOfNTP is the time of a 64-bit NTP timestamp.
func timeOfNTP(v uint64) time.Time {
	sec := int64(v>>32) - ntpEpochOffset
	frac := int64((v & 0xffffffff) * uint64(time.Second) >> 32)
	return time.Unix(sec, frac)
}

// ntpEpochOffset is 1970-01-01 in seconds since 1900-01-01.
const ntpEpochOffset = 2208988800
