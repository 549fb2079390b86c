package rtspedge

import (
	"context"
	"errors"
	"io"
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
	// The store never changes or reuses a packet's bytes: keep them, not a
	// copy (q.data is never written through).
	q.track, q.tt, q.data = pkt.Track, pkt.TT, pkt.RTP
	return q, nil
}

// replay sends the queued and stored packets, each at
// wallStart + (tt - ttStart), until the end of the recording or ctx ends.
func (p *player) replay(ctx context.Context, wallStart time.Time, ttStart time.Duration) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	maxBatch := max(p.s.cfg.WriteQueueSize/2, 1)
	var pkt rtp.Packet
	for {
		horizon := time.Now().Add(p.s.cfg.SendAhead)
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
			if due.After(horizon) {
				wake = due
				break
			}
			n++
		}
		if n > 0 && (!p.send(n, &pkt) || !p.report(time.Now())) {
			return
		}
		switch {
		case readErr == nil:
		case errors.Is(readErr, store.ErrWouldBlock):
			continue // the next round waits at the tail
		case isEOF(readErr):
			if p.head >= len(p.queue) {
				// The BYE waits for the last packet's time and byeGrace:
				// a player stops at it, and packets still in flight
				// (sent SendAhead early; over UDP on another socket than
				// RTCP) would be lost.
				timer.Reset(time.Until(wallStart.Add(p.maxSent - ttStart + byeGrace)))
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
			wallStart, ttStart = time.Now(), p.sNPT
			p.wallStart = wallStart
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
			timer.Reset(time.Until(wake))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
	}
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

// send hands the n packets at the queue head to the session, rewriting
// sequence numbers and timestamps; false when the session is gone or too
// slow.
func (p *player) send(n int, pkt *rtp.Packet) bool {
	batch := p.queue[p.head : p.head+n]
	count, sent := uint64(0), uint64(0)
	for i := range batch {
		if p.sendable(&batch[i]) {
			count++
		}
	}
	if p.conn != nil && count > 0 {
		p.pushed += count
		p.conn.expect(p.pushed)
	}
	for i := range batch {
		q := &batch[i]
		if !p.sendable(q) {
			continue
		}
		if err := pkt.Unmarshal(q.data); err != nil {
			continue // the store holds what the origin sent; sendable checked the size
		}
		t := p.tracks[q.track]
		if !t.haveOff {
			want := t.init + uint32(durationToTicks(p.sStart+q.tt-p.sNPT, t.clock))
			t.off, t.haveOff = want-pkt.Timestamp, true
		}
		pkt.Timestamp += t.off
		pkt.SequenceNumber = t.nextSeq
		t.nextSeq++
		if err := p.ss.WritePacketRTP(t.media, pkt); err != nil {
			p.writeFailed(err)
			return false
		}
		t.packets++
		t.octets += uint32(len(pkt.Payload))
		p.maxSent = max(p.maxSent, q.tt)
		sent += uint64(len(q.data))
	}
	p.s.packetsSent.Add(count)
	p.s.bytesSent.Add(sent)
	if p.count != nil && count > 0 {
		p.count.Delivered(count, sent)
	}
	p.head += n
	p.compact()
	return true
}

// compact moves the packets still queued to the front, keeping every
// slot's buffer, so the queue does not grow while one packet always waits.
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

// writeFailed drops a player whose queue is full (or whose session is
// gone); other players are not affected.
func (p *player) writeFailed(err error) {
	var full liberrors.ErrServerWriteQueueFull
	if errors.As(err, &full) {
		n := p.s.slowDropped.Add(1)
		p.log.Warn("player too slow, queue full: closing its session", "slow_players_dropped", n)
	} else {
		p.log.Debug("write to player failed; closing its session", "err", err)
	}
	p.ss.Close()
}
