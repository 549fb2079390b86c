package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// Timing of the live tail.
const (
	// LiveKeepaliveInterval is how often a server relaying a live recording
	// says it is still there while no packet comes (its own upstream may be
	// reconnecting).
	LiveKeepaliveInterval = 500 * time.Millisecond
	// LiveStallTimeout is how long a client relaying a live recording waits
	// for the next frame before it takes the peer for dead or stuck and moves
	// on: well under a GOP or two, so players see a short freeze at worst.
	LiveStallTimeout = 2 * time.Second
	// LiveBehindLimit is how far a live source's packets may fall behind
	// the pace their transmit times set before the client leaves it: a
	// source that keeps sending, but late (a slow link, an overloaded
	// node), is as bad as a dead one.
	LiveBehindLimit = 2 * time.Second
)

// ErrBehind: a live source's packets came ever later than their transmit
// times say they should.
var ErrBehind = errors.New("mesh: peer fell behind the live stream")

// liveLag follows how late a live source's packets arrive: against the
// earliest arrival seen so far, relative to transmit time.
type liveLag struct {
	min  time.Duration // least (arrival - tt) seen
	seen bool
}

// check notes a packet of transmit time tt arriving at now; ErrBehind when
// it is LiveBehindLimit later than the pace of the earliest one. A source
// that reconnects its own upstream re-bases tt past the gap, so its silence
// is not counted (keepalives and LiveStallTimeout cover that).
func (l *liveLag) check(tt time.Duration, now time.Time) error {
	off := time.Duration(now.UnixNano()) - tt
	if !l.seen || off < l.min {
		l.min, l.seen = off, true
		return nil
	}
	if late := off - l.min; late > LiveBehindLimit {
		return fmt.Errorf("%w: %v late", ErrBehind, late.Round(time.Millisecond))
	}
	return nil
}

// tailFlusher flushes what a tail (live or open segment) has buffered for
// its client.
type tailFlusher struct {
	bw    *bufio.Writer
	flush func() error
	// batch: after a flush, more frames are gathered for up to this long
	// before the next (0: a flush whenever nothing more is there at once).
	batch time.Duration
	last  time.Time // the last flush that carried a packet
	// packets: the caller buffered a packet since the last flush (a flush
	// of the answer alone does not start a batch).
	packets bool
	// due, when set, says in how long the next flush has work to do
	// although no packet came (a live checkpoint to sign; ≤ 0: none).
	due func() time.Duration
}

// next returns r's next packet. When none is there at once it flushes what
// is buffered (after gathering for up to batch), then waits, writing a
// keepalive frame every interval while nothing comes.
func (t *tailFlusher) next(ctx context.Context, r *store.Reader, interval time.Duration) (store.Packet, error) {
	for {
		p, err := r.TryNext()
		if !errors.Is(err, store.ErrWouldBlock) {
			return p, err
		}
		if hold := t.batch - time.Since(t.last); hold > 0 && t.bw.Buffered() > 0 {
			// Let packets gather, without a wake-up for each, then take
			// all that came.
			select {
			case <-ctx.Done():
				return store.Packet{}, ctx.Err()
			case <-time.After(hold):
			}
			t.last = time.Time{}
			continue
		}
		if err := t.flush(); err != nil {
			return store.Packet{}, err
		}
		if t.packets {
			t.last, t.packets = time.Now(), false
		}
		wait, early := interval, false
		if t.due != nil {
			d := t.due()
			if d < 0 {
				// A checkpoint came due between the flush and now (the
				// flush found it not yet due; its write took the rest of
				// the time): flush it now, not at the next packet or
				// keepalive, which a client holding these packets does
				// not wait for.
				continue
			}
			if d > 0 && d < wait {
				wait, early = d, true
			}
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		p, err = r.Next(wctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return p, err
		}
		if !early {
			_ = t.bw.WriteByte(frameKeepalive)
		}
	}
}

// serveLiveTail sends a live recording packet by packet from the first
// packet of segment index on, until the recording ends (then the end frame)
// or the client or ctx does. A relay that reads the open segment's packets
// is one packet behind its source, not one segment. Every packet is named
// by a checkpoint: the one this node received for it, sent before it, else
// this node's own, signed when the tail flushes. mf is the manifest the
// answer was made from.
func (m *Mesh) serveLiveTail(ctx context.Context, w answerWriter, mf store.Manifest, index uint32) error {
	key := mf.Key
	r, err := m.st.NewReaderAt(key, index)
	if err != nil {
		return fmt.Errorf("live tail at segment %d: %w", index, err)
	}
	defer r.Close()
	sg := &liveSigner{m: m, key: key, digest: HeaderDigest(&mf)}
	tail := sg.flusher(w, 0)
	var clock []byte                    // the clock frame that goes before a packet
	clocks := make([]store.Clock, 0, 2) // per track: the mapping last sent
	for {
		p, err := tail.next(ctx, r, LiveKeepaliveInterval)
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			// The source's own upstream ended: say so and close.
			mf, merr := m.st.Manifest(key)
			if merr != nil {
				return fmt.Errorf("live tail end: %w", merr)
			}
			if err := sg.buffer(w, true); err != nil { // the last packets' checkpoint
				return err
			}
			return w.end(mf)
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return fmt.Errorf("live tail: %w", err)
		}
		clock = clock[:0]
		if c, ok := r.Clock(p.Track); ok {
			for len(clocks) <= int(p.Track) {
				clocks = append(clocks, store.Clock{})
			}
			if sent := clocks[p.Track]; c.RTP != sent.RTP || !c.NTP.Equal(sent.NTP) {
				clocks[p.Track] = c
				clock = appendClock(clock, p.Track, c)
			}
		}
		if err := sg.send(w, clock, &p); err != nil {
			return err
		}
	}
}
