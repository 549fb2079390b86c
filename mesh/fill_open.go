package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// OpenBatch is how long a server relaying an on-demand open segment
// gathers packets after a write before the next: the first packet goes out
// at once (a player on the client waits for it), the others are paced by
// the players anyway, and one write per frame of a video costs the server,
// the client and the link more than the packet.
const OpenBatch = 50 * time.Millisecond

// serveOpenTail relays an on-demand recording that is still filling packet
// by packet from the first packet of segment index (its open segment) on:
// after the last packet of each segment, once the segment is sealed, a seal
// frame with its hash and seal; when the fill ends, the end frame. The
// client's players thus get a packet as soon as this node stores it, not a
// segment later. Every packet is named by a checkpoint, as a live tail's
// (liveSigner), signed over digest, the header digest of the answer.
func (m *Mesh) serveOpenTail(ctx context.Context, w answerWriter, key string, digest store.Hash, index uint32) error {
	r, err := m.st.NewReaderAt(key, index)
	if err != nil {
		return fmt.Errorf("open tail at segment %d: %w", index, err)
	}
	defer r.Close()
	cur, relayed := index, false // the segment being relayed; whether a packet of it went out
	sg := &liveSigner{m: m, key: key, digest: digest}
	tail := sg.flusher(w, OpenBatch)
	for {
		p, err := tail.next(ctx, r, KeepaliveInterval)
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			// The fill ended: its last segment is sealed (or failed to be).
			mf, err := m.st.Manifest(key)
			if err != nil {
				return fmt.Errorf("open tail end: %w", err)
			}
			if err := sg.buffer(w, true); err != nil { // the last packets' checkpoint
				return err
			}
			if mf.State == store.StateComplete {
				if err := m.sendSeal(ctx, w, key, cur, relayed); err != nil {
					return err
				}
			}
			// A recording that ended partial (its origin failed, or this
			// node stops) keeps the seal of its last segment to itself:
			// every client goes on from its next source with what was
			// relayed of it, as it would had this node died, rather than
			// some clients holding that segment and others another cut of
			// it from the node that takes over.
			return w.end(mf)
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return fmt.Errorf("open tail: %w", err)
		}
		if seg := r.Segment(); seg != cur {
			// The reader moved on: segment cur is sealed, its packets are
			// named before its seal.
			if err := sg.buffer(w, true); err != nil {
				return err
			}
			if err := m.sendSeal(ctx, w, key, cur, relayed); err != nil {
				return err
			}
			cur, relayed = seg, false
		}
		if err := sg.send(w, nil, &p); err != nil {
			return err
		}
		relayed, tail.packets = true, true
	}
}

// sendSeal writes the seal frame of segment i of key once it is stored,
// when packets of it were relayed; a segment the fill could not store gets
// none (the end frame then says partial).
func (m *Mesh) sendSeal(ctx context.Context, w answerWriter, key string, i uint32, relayed bool) error {
	si, stored, err := m.st.WaitSealed(ctx, key, i)
	switch {
	case err != nil:
		return fmt.Errorf("seal of segment %d: %w", i, err)
	case !relayed || !stored:
		return nil
	}
	return w.buffer(appendSealFrame(nil, i, si.Hash, &si.Seal))
}
