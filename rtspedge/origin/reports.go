package origin

import (
	"encoding/hex"
	"math/rand/v2"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtcp"
)

// srInterval is the mean interval between two sender reports of a track
// (RFC 3550's 5 s minimum), randomised per report into [0.5, 1.5] × it.
const srInterval = 5 * time.Second

// reporter sends the RTCP of one pacing run: per track a compound SR + SDES
// CNAME with the first packet and about every 5 s after, and SR + SDES +
// BYE at the end of a VOD play. gortsplib's own reports (off: see Run)
// follow the payload, which meta-info makes opaque to it.
//
// The RTP↔NTP line is the clip's presentation time: a timestamp stands for
// presentation time (ts − initialTS) / clock, which is due at zero +
// presentation time / speed (zero: when presentation time 0 was or would
// have been sent). Every session of a live stream shares zero (the epoch),
// so they all report the same line.
type reporter struct {
	st    *gortsplib.ServerStream
	c     *Clip
	zero  time.Time
	speed float64
	tsOff uint32
	cname string
	ssrc  []uint32
	next  []time.Time // per track: the next report is due; zero: at its first packet
	pkts  []uint32
	bytes []uint32
}

func newReporter(st *gortsplib.ServerStream, c *Clip, zero time.Time, speed float64, tsOff uint32) *reporter {
	n := c.Tracks()
	rp := &reporter{st: st, c: c, zero: zero, speed: speed, tsOff: tsOff,
		ssrc: make([]uint32, n), next: make([]time.Time, n), pkts: make([]uint32, n), bytes: make([]uint32, n)}
	var b [8]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	rp.cname = "rtspmesh-origin-" + hex.EncodeToString(b[:])
	stats := st.Stats()
	for i, m := range st.Desc.Medias {
		for _, f := range stats.Medias[m].Formats {
			rp.ssrc[i] = f.LocalSSRC
		}
	}
	return rp
}

// sent notes a packet of track with payload bytes, sent at now, and sends
// the track's report when it is due; false when the stream is closed.
func (rp *reporter) sent(track int, payload int, now time.Time) bool {
	rp.pkts[track]++
	rp.bytes[track] += uint32(payload)
	if now.Before(rp.next[track]) {
		return true
	}
	rp.next[track] = now.Add(srInterval/2 + rand.N(srInterval))
	return rp.write(track, now, nil)
}

// bye ends the play: SR + SDES + BYE on every track.
func (rp *reporter) bye() {
	now := time.Now()
	for track := range rp.ssrc {
		// The reason makes the BYE at least 12 bytes: FFmpeg ignores
		// shorter RTCP packets.
		if !rp.write(track, now, &rtcp.Goodbye{Sources: []uint32{rp.ssrc[track]}, Reason: "end of stream"}) {
			return
		}
	}
}

func (rp *reporter) write(track int, now time.Time, bye *rtcp.Goodbye) bool {
	clock := int64(rp.c.clockRate[track])
	pt := time.Duration(float64(now.Sub(rp.zero)) * rp.speed)
	ticks := int64(pt/time.Second)*clock + int64(pt%time.Second)*clock/int64(time.Second)
	sr := &rtcp.SenderReport{
		SSRC:        rp.ssrc[track],
		NTPTime:     ntpTime(now),
		RTPTime:     initialTS[track] + rp.tsOff + uint32(ticks),
		PacketCount: rp.pkts[track],
		OctetCount:  rp.bytes[track],
	}
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: rp.ssrc[track],
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: rp.cname}},
	}}}
	pkt := rtcp.CompoundPacket{sr, sdes}
	if bye != nil {
		pkt = append(pkt, bye)
	}
	return rp.st.WritePacketRTCP(rp.st.Desc.Medias[track], &pkt) == nil
}

// ntpTime is t in the 64-bit NTP format of RTCP.
func ntpTime(t time.Time) uint64 {
	ns := uint64(t.UnixNano()) + 2208988800*uint64(time.Second)
	sec, frac := ns/uint64(time.Second), ns%uint64(time.Second)
	return sec<<32 | frac<<32/uint64(time.Second)
}
