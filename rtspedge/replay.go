package rtspedge

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/store"
)

const (
	// maxPacketSize is gortsplib's limit for an outgoing RTP packet.
	maxPacketSize = 1472
	// byeGrace: the end's RTCP BYE follows the last packet's time by this.
	byeGrace = 200 * time.Millisecond
	// wakeGrid: a TCP replay wakes on a grid of SendAhead/wakeGrid (10 ms
	// by default), at or before its next packet is due, so that the
	// replays of many players wake together.
	wakeGrid = 8
	// retrailAfter: a live TCP play whose every packet has come late for
	// this long (it waited at the stored edge for each: the source fell
	// behind its own clock for good, or that clock runs slower than ours)
	// moves its clock back to trail the edge again (liveTrail).
	retrailAfter = time.Second
)

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// peek returns the packet at queue index i, reading ahead as needed. When
// mayBlock is false and the recording may still grow, it returns
// store.ErrWouldBlock instead of waiting at the tail.
func (p *player) peek(ctx context.Context, i int, mayBlock bool) (*qpacket, error) {
	if i < len(p.queue) {
		return &p.queue[i], nil
	}
	if p.eof || p.reader == nil {
		return nil, io.EOF
	}
	var pkt store.Packet
	var err error
	if mayBlock || p.m.State == store.StateComplete {
		pkt, err = p.reader.Next(ctx)
	} else {
		pkt, err = p.reader.TryNext()
	}
	if err != nil {
		if isEOF(err) {
			p.eof = true
		}
		return nil, err
	}
	if len(p.queue) < cap(p.queue) {
		p.queue = p.queue[:len(p.queue)+1]
	} else {
		p.queue = append(p.queue, qpacket{})
	}
	q := &p.queue[len(p.queue)-1]
	// The store does not reuse a packet's bytes until send releases them:
	// keep them, not a copy (q.data is never written through).
	q.track, q.tt, q.data = pkt.Track, pkt.TT, pkt.RTP
	p.read++
	return q, nil
}

// replay sends the queued and stored packets, each at
// wallStart + (tt - ttStart), until the end of the recording or ctx ends.
func (p *player) replay(ctx context.Context, wallStart time.Time, ttStart time.Duration) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	maxBatch := max(p.s.cfg.WriteQueueSize/2, 1)
	var pkt rtp.Packet
	var lastSend time.Time // when the last batch left
	// Over UDP packets leave when due, not SendAhead early: they go through
	// gortsplib's session queue, and a packet that reached a player ahead
	// of a PAUSE answer is read after it (UDP has no order with the RTSP
	// connection), so a seek (PAUSE, PLAY Range) would show frames from
	// before it. An origin that paces sends none ahead either.
	ahead := p.s.cfg.SendAhead
	if p.conn == nil {
		ahead = 0
	}
	if p.answer != nil {
		p.answer.awaitAnswer()
		p.answer = nil
	}
	// When the next packet is due, once known; at first wallStart, which a
	// live play's trail (liveTrail) puts ahead of now: the first batch
	// holds what is stored of the key frame it starts at and after.
	next := wallStart
	// A live TCP play: whether the last round ended at the stored edge, and
	// since when every packet it waited for there was already due and none
	// stored was not due yet (lagging).
	atEdge := false
	var late time.Time
	for {
		// A TCP replay wakes on a grid (below), up to a grid step before
		// its next packet is due; its batch reaches SendAhead past that
		// packet's time all the same.
		now := time.Now()
		horizon := now.Add(ahead)
		if next.After(now) && ahead > 0 {
			horizon = next.Add(ahead)
		}
		next = time.Time{}
		n := 0
		var wake time.Time
		var readErr error
		for n < maxBatch {
			q, err := p.peek(ctx, p.head+n, n == 0)
			if err != nil {
				readErr = err
				break
			}
			due := wallStart.Add(q.tt - ttStart)
			if n == 0 && atEdge && ahead > 0 && p.m.Live {
				if shift := p.lagging(&late, due); shift > 0 {
					wallStart, p.wallStart = wallStart.Add(shift), p.wallStart.Add(shift)
					due = due.Add(shift)
				}
			}
			atEdge = false
			if due.After(horizon) {
				wake = due
				break
			}
			n++
		}
		if n > 0 {
			if !p.send(n, &pkt) {
				return
			}
			lastSend = time.Now()
			if p.conn == nil && !p.report(lastSend) { // TCP: sendTCP wrote them with the batch
				return
			}
		}
		switch {
		case readErr == nil:
		case errors.Is(readErr, store.ErrWouldBlock):
			atEdge = true
			continue // the next round waits at the tail
		case isEOF(readErr):
			if p.head >= len(p.queue) {
				// The BYE waits byeGrace after the last packet's time, or
				// after it left when it left late (a recording still
				// filling that fell behind the replay): a player stops at
				// the BYE, and packets still in flight (over UDP on
				// another socket than RTCP) would be lost.
				byeAt := wallStart.Add(p.maxSent - ttStart)
				if lastSend.After(byeAt) {
					byeAt = lastSend
				}
				timer.Reset(time.Until(byeAt.Add(byeGrace)))
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				p.sendBye()
				p.log.Debug("replay reached the end")
				return
			}
		case ctx.Err() != nil:
			return
		case p.m.Live && errors.Is(readErr, store.ErrBehindWindow):
			if !p.toLiveEdge(ctx) {
				return
			}
			wallStart, ttStart = time.Now().Add(p.liveTrail()), p.sNPT
			p.wallStart, next = wallStart, wallStart
			continue
		case errors.Is(readErr, store.ErrCorrupt):
			// A stored segment is damaged (the store logged which and cut
			// the recording there for the next fill to repair): end the
			// play as a stream end, not a crash.
			p.log.Warn("stored segment damaged; ending the play", "err", readErr)
			p.sendBye()
			p.ss.Close()
			return
		default:
			p.log.Warn("replay read failed; closing the session", "err", readErr)
			p.ss.Close()
			return
		}
		if !wake.IsZero() {
			// A packet stored and not due yet: the play trails the edge.
			late = time.Time{}
			next = wake
			if ahead > 0 {
				if !p.s.grid.wait(ctx, wake.Truncate(ahead/wakeGrid)) {
					return
				}
				continue
			}
			timer.Reset(time.Until(wake))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
	}
}

// liveTrail is how far after now a live TCP play starts its clock: far
// enough that it trails the live edge (the last stored packet) by
// SendAhead and a grid step, so its packets leave in batches of SendAhead
// like any replay's, not a write (and a wake-up) per packet as they
// arrive. A play that starts at a key frame less than that behind the
// edge (it joined just after it) starts that much later; what is stored
// of it leaves at once all the same (replay's first batch). Zero for UDP
// plays (their packets leave when due) and plays further behind.
func (p *player) liveTrail() time.Duration {
	if !p.m.Live || p.conn == nil {
		return 0
	}
	_, last, err := p.rec.Span()
	if err != nil {
		return 0
	}
	return max(p.s.cfg.SendAhead+p.s.cfg.SendAhead/wakeGrid-(last-p.sNPT), 0)
}

// lagging is called with the due time of each packet a live TCP play
// waited for at the stored edge. A packet that came after it was due means
// the play's clock has run up to the edge, where it writes each packet as it
// arrives (a write and a wake-up per frame, not a batch per SendAhead);
// once they have all come late for retrailAfter (*late: since when), it
// returns how far to move the play's clock so that this packet is due a
// trail (liveTrail's) from now. A source that stalls and then catches up
// sends late packets for no longer than the stall, and costs no delay.
func (p *player) lagging(late *time.Time, due time.Time) time.Duration {
	now := time.Now()
	switch {
	case due.After(now):
		*late = time.Time{}
		return 0
	case late.IsZero():
		*late = now
		return 0
	case now.Sub(*late) < retrailAfter:
		return 0
	}
	*late = time.Time{}
	shift := now.Add(p.s.cfg.SendAhead + p.s.cfg.SendAhead/wakeGrid).Sub(due)
	p.s.liveRetrails.Add(1)
	p.log.Debug("live play caught up with the stored edge; trailing it again", "by", shift)
	return shift
}

// toLiveEdge moves a live player that the window overtook (paused, time-
// shifted or slow) to the latest key frame, continuing the session
// timeline, so it never gets a hole; false when the session was closed.
func (p *player) toLiveEdge(ctx context.Context) bool {
	was := p.maxSent
	if res := p.seek(ctx, liveEdge); res != nil {
		p.log.Warn("live window overtook the player and the live edge cannot be read; closing the session")
		p.ss.Close()
		return false
	}
	p.log.Info("live window overtook the player; moved to the live edge", "was_at", was, "now_at", p.sNPT)
	return true
}

// send sends the n packets at the queue head, rewriting sequence numbers,
// timestamps and SSRCs; false when the session is gone or too slow. Over
// TCP the batch is written to the connection here (sendTCP); over UDP each
// packet goes through gortsplib's session queue.
func (p *player) send(n int, pkt *rtp.Packet) bool {
	batch := p.queue[p.head : p.head+n]
	var count, sent uint64
	var ok bool
	if p.conn != nil {
		count, sent, ok = p.sendTCP(batch)
	} else {
		count, sent, ok = p.sendUDP(batch, pkt)
	}
	p.s.packetsSent.Add(count)
	p.s.bytesSent.Add(sent)
	if p.count != nil && count > 0 {
		p.count.Delivered(count, sent)
	}
	if !ok {
		return false
	}
	for i := range batch {
		// A sent packet's bytes are the store's (a segment or a chunk of
		// it): the slot must not keep them alive, and the reader may read
		// later packets into them (both copies, TCP's and gortsplib's for
		// UDP, are made).
		batch[i].data = nil
	}
	p.head += n
	if p.reader != nil {
		p.reader.Release(p.read - uint64(len(p.queue)-p.head))
	}
	p.compact()
	return true
}

// sendTCP writes the batch as interleaved frames, gathered in a pooled
// buffer, in as few writes as batchMaxBytes allows, and after them the
// sender reports due (appendReports), in the same write. The stored packet
// is copied as it is, its sequence number, timestamp and SSRC rewritten in
// place: no decoding, no allocation, no other goroutine.
func (p *player) sendTCP(batch []qpacket) (count, sent uint64, ok bool) {
	bp := batchBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		*bp = buf[:0]
		batchBufs.Put(bp)
	}()
	for i := range batch {
		q := &batch[i]
		if !p.sendable(q) {
			continue
		}
		payload, valid := rtpPayloadLen(q.data)
		if !valid {
			continue // the store holds what the origin sent; sendable checked the size
		}
		if len(buf)+4+len(q.data) > cap(buf) {
			if !p.writeFrames(buf) {
				return count, sent, false
			}
			buf = buf[:0]
		}
		t := p.tracks[q.track]
		at := len(buf) + 4
		buf = append(buf, '$', byte(t.channel), byte(len(q.data)>>8), byte(len(q.data)))
		buf = append(buf, q.data...)
		h := buf[at : at+12]
		binary.BigEndian.PutUint16(h[2:4], t.nextSeq)
		binary.BigEndian.PutUint32(h[4:8], p.sessionTS(t, q.tt, binary.BigEndian.Uint32(h[4:8])))
		binary.BigEndian.PutUint32(h[8:12], t.ssrcs[h[1]&0x7f])
		t.nextSeq++
		t.packets++
		t.octets += uint32(payload)
		p.maxSent = max(p.maxSent, q.tt)
		count++
		sent += uint64(len(q.data))
	}
	buf, reports, ok := p.appendReports(buf, time.Now())
	if !ok || len(buf) > 0 && !p.writeFrames(buf) {
		return count, sent, false
	}
	if reports > 0 {
		p.s.reportsSent.Add(reports)
	}
	return count, sent, true
}

// writeFrames writes interleaved frames of the replay; false (the session
// closed) when the connection failed or did not take them within
// slowWrite: the player is too slow, and is dropped alone.
func (p *player) writeFrames(b []byte) bool {
	err := p.conn.writeBatch(b)
	if err == nil {
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		n := p.s.slowDropped.Add(1)
		p.log.Warn("player too slow, its connection took nothing for "+slowWrite.String()+": closing its session",
			"slow_players_dropped", n)
	} else {
		p.log.Debug("write to player failed; closing its session", "err", err)
	}
	p.ss.Close()
	return false
}

// sendUDP hands the batch to gortsplib's session queue, a packet at a time.
//
// A full queue drops the packet, not the player: over UDP nothing the
// player does holds the queue back (it has no flow control); it fills when
// this process's writer falls behind (the CPU is short, or the socket's
// send buffer is: the link is), and dropping packets sheds that load as a
// congested link would. The sequence number is spent all the same, so the
// player sees the loss. Only a queue that took nothing for slowWrite
// closes the session (writeFailed), as a TCP connection that takes
// nothing does.
func (p *player) sendUDP(batch []qpacket, pkt *rtp.Packet) (count, sent uint64, ok bool) {
	for i := range batch {
		q := &batch[i]
		if !p.sendable(q) {
			continue
		}
		if err := pkt.Unmarshal(q.data); err != nil {
			continue // the store holds what the origin sent; sendable checked the size
		}
		t := p.tracks[q.track]
		pkt.Timestamp = p.sessionTS(t, q.tt, pkt.Timestamp)
		pkt.SequenceNumber = t.nextSeq
		t.nextSeq++
		if err := p.ss.WritePacketRTP(t.media, pkt); err != nil {
			if p.udpQueueFull(err) {
				p.udpDrop()
				p.maxSent = max(p.maxSent, q.tt) // its timestamps are spent too
				continue
			}
			p.writeFailed(err)
			return count, sent, false
		}
		p.udpFullSince = time.Time{}
		p.udpHanded++
		t.packets++
		t.octets += uint32(len(pkt.Payload))
		p.maxSent = max(p.maxSent, q.tt)
		count++
		sent += uint64(len(q.data))
	}
	return count, sent, true
}

// sessionTS is the session's timestamp for a stored one of track t at tt:
// the first packet of a PLAY fixes the offset.
func (p *player) sessionTS(t *playTrack, tt time.Duration, stored uint32) uint32 {
	if !t.haveOff {
		want := t.init + uint32(store.DurationToTicks(p.sStart+tt-p.sNPT, t.clock))
		t.off, t.haveOff = want-stored, true
	}
	return stored + t.off
}

// rtpPayloadLen is the payload size of an RTP packet (what a sender report
// counts: without header, CSRCs, extension and padding); false when b is
// not a whole RTP packet.
func rtpPayloadLen(b []byte) (int, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0, false
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // extension
		if len(b) < n+4 {
			return 0, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:n+4]))
	}
	pad := 0
	if b[0]&0x20 != 0 && len(b) > n {
		pad = int(b[len(b)-1])
	}
	if n+pad > len(b) {
		return 0, false
	}
	return len(b) - n - pad, true
}

// compact moves the packets still queued to the front, keeping the slots,
// so the queue does not grow while one packet always waits.
func (p *player) compact() {
	rest := len(p.queue) - p.head
	if p.head == 0 || rest > p.head {
		return
	}
	for i := 0; i < rest; i++ {
		p.queue[i], p.queue[p.head+i] = p.queue[p.head+i], p.queue[i]
	}
	p.queue, p.head = p.queue[:rest], 0
}

// sendable: the track is set up, the payload type is the media's, the
// packet fits gortsplib's limit.
func (p *player) sendable(q *qpacket) bool {
	t := p.trackOf(q.track)
	if t == nil || !t.setup || len(q.data) < 12 || !t.pts[q.data[1]&0x7f] {
		return false
	}
	if len(q.data) > maxPacketSize {
		if p.s.oversized.Add(1) == 1 {
			p.log.Warn("stored packet exceeds the RTP packet limit; skipped", "bytes", len(q.data))
		}
		return false
	}
	return true
}

// udpQueueFull says whether err is gortsplib's session queue being full
// while it has not refused everything for slowWrite: what was refused may
// be dropped (sendUDP, a sender report) or handed again (the BYE). A queue
// that refused everything for slowWrite is stuck: false (writeFailed).
func (p *player) udpQueueFull(err error) bool {
	var full liberrors.ErrServerWriteQueueFull
	if !errors.As(err, &full) {
		return false
	}
	now := time.Now()
	if p.udpFullSince.IsZero() {
		p.udpFullSince = now
	}
	return now.Sub(p.udpFullSince) < slowWrite
}

// udpDrop counts an RTP packet sendUDP dropped, and logs a session's first.
func (p *player) udpDrop() {
	n := p.s.udpDropped.Add(1)
	if p.udpDropped == 0 {
		p.log.Warn("UDP queue full: dropping packets, not the player (this node is short of CPU or of its link)",
			"udp_packets_dropped", n)
	}
	p.udpDropped++
}

// writeFailed drops a player whose UDP queue took nothing for slowWrite
// (or whose session is gone); other players are not affected.
func (p *player) writeFailed(err error) {
	var full liberrors.ErrServerWriteQueueFull
	if errors.As(err, &full) {
		n := p.s.slowDropped.Add(1)
		p.log.Warn("UDP player's queue took nothing for "+slowWrite.String()+": closing its session", "slow_players_dropped", n)
	} else {
		p.log.Debug("write to player failed; closing its session", "err", err)
	}
	p.ss.Close()
}
