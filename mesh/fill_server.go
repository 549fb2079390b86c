package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/rtspmesh/rtspmesh/store"
)

// Timing of the fill protocol's server side.
const (
	// requestTimeout bounds reading a request after the stream opened.
	requestTimeout = 10 * time.Second
	// writeTimeout bounds each write to a client.
	writeTimeout = 30 * time.Second
	// KeepaliveInterval is how often a server waiting for a filling
	// recording's next segment tells the client it is still there.
	KeepaliveInterval = 2 * time.Second
	// serviceName names the fill protocol in libp2p's resource manager.
	serviceName = "rtspmesh.fill"
	// writeBuffer batches frame headers with segment bytes.
	writeBuffer = 64 << 10
)

// handleFill serves one fill stream (the server side of doc.go's protocol).
func (m *Mesh) handleFill(s network.Stream) {
	if !m.handling(s) {
		return
	}
	defer m.handlers.Done()

	if err := s.Scope().SetService(serviceName); err != nil {
		m.log.Debug("fill stream refused by resource manager", "err", err)
		_ = s.Reset()
		return
	}
	if err := s.Scope().ReserveMemory(writeBuffer, network.ReservationPriorityHigh); err != nil {
		m.log.Debug("fill stream refused: no memory", "err", err)
		_ = s.Reset()
		return
	}
	defer s.Scope().ReleaseMemory(writeBuffer)
	remote := s.Conn().RemotePeer().String()
	log := m.log.With("fill_to", remote)
	_ = s.SetReadDeadline(time.Now().Add(requestTimeout))
	req, err := readRequest(s)
	if err != nil {
		log.Debug("bad fill request", "err", err)
		_ = s.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, _ = s.Write([]byte{statusBadRequest})
		_ = s.Close()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	log = log.With("stream", req.Key)

	m.serving.Add(1)
	defer m.serving.Add(-1)
	ctx, cancel := context.WithCancel(m.closing)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	// The client sends nothing after its request: a read that returns means
	// it reset or closed the stream, and the fill is over.
	var watch sync.WaitGroup
	defer watch.Wait()
	watch.Go(func() {
		var b [1]byte
		_, _ = s.Read(b[:])
		cancel()
	})

	start := time.Now()
	sent, err := m.serveFill(ctx, s, req)
	if err != nil {
		log.Debug("fill serve stopped", "from_segment", req.From, "segments", sent, "err", err)
		_ = s.Reset()
		return
	}
	stop() // a clean end: close, do not reset what is still in flight
	_ = s.Close()
	log.Debug("fill served", "from_segment", req.From, "segments", sent, "took", time.Since(start))
}

// handling counts a stream handler in flight (Close waits for it); false,
// with the stream reset, once the mesh is closing.
func (m *Mesh) handling(s network.Stream) bool {
	m.mu.Lock() // orders the check with Close's cancel
	defer m.mu.Unlock()
	if m.closing.Err() != nil {
		_ = s.Reset()
		return false
	}
	m.handlers.Add(1)
	return true
}

// serveFill writes the answer and the frames for req. It returns the number
// of segments sent; nil once the end frame is written.
func (m *Mesh) serveFill(ctx context.Context, s network.Stream, req fillRequest) (int, error) {
	bw := bufio.NewWriterSize(s, writeBuffer)
	flush := func() error {
		_ = s.SetWriteDeadline(time.Now().Add(writeTimeout))
		return bw.Flush()
	}
	writeStatus := func(st byte) error {
		_ = bw.WriteByte(st)
		return flush()
	}

	mf, err := m.st.Manifest(req.Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, writeStatus(statusNotFound)
	case err != nil:
		_ = writeStatus(statusServerError)
		return 0, fmt.Errorf("manifest: %w", err)
	}
	if mf.Live && mf.Source == "" {
		// Between two upstreams: a neighbour relaying from it now could close
		// a loop (it may be this node's next source).
		return 0, writeStatus(statusUnavailable)
	}
	from := req.From
	liveEdge := from == FromLiveEdge
	if liveEdge && !mf.Live {
		return 0, writeStatus(statusUnavailable)
	}
	if !liveEdge && len(mf.Segments) > 0 && from < mf.Segments[0].Index {
		if !mf.Live || from != 0 {
			return 0, writeStatus(statusUnavailable) // dropped from a live window
		}
		from = mf.Segments[0].Index // a live window: from its oldest segment
	}
	head, err := appendOK(nil, mf)
	if err != nil {
		_ = writeStatus(statusServerError)
		return 0, err
	}
	_ = s.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := bw.Write(head); err != nil {
		return 0, err
	}

	if mf.Live && m.cfg.ServingLive != nil {
		defer m.cfg.ServingLive(req.Key)()
	}
	if liveEdge {
		return 0, m.serveLiveTail(ctx, s, bw, req.Key, nextIndex(mf))
	}

	var hdr []byte
	sent := 0
	for i := from; ; {
		data, h, err := m.st.Segment(req.Key, i)
		if err == nil {
			hdr = appendSegmentHeader(hdr[:0], i, h, len(data))
			_ = s.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := bw.Write(hdr); err != nil {
				return sent, err
			}
			if _, err := bw.Write(data); err != nil {
				return sent, err
			}
			m.bytesOut.Add(uint64(len(data)))
			sent++
			i++
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return sent, fmt.Errorf("segment %d: %w", i, err)
		}
		if mf.Live {
			// The sealed past is sent: the rest goes packet by packet.
			return sent, m.serveLiveTail(ctx, s, bw, req.Key, i)
		}
		// Not sealed (yet): flush what is buffered, then wait.
		if err := flush(); err != nil {
			return sent, err
		}
		wctx, cancel := context.WithTimeout(ctx, KeepaliveInterval)
		mf, err = m.st.WaitSegment(wctx, req.Key, i)
		cancel()
		switch {
		case ctx.Err() != nil:
			return sent, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			_ = bw.WriteByte(frameKeepalive)
			if err := flush(); err != nil {
				return sent, err
			}
			continue
		case err != nil:
			return sent, fmt.Errorf("wait segment %d: %w", i, err)
		case hasSegment(mf, i):
			continue
		case i < nextIndex(mf):
			return sent, fmt.Errorf("segment %d: %w", i, store.ErrBehindWindow)
		case mf.State == store.StateFilling || mf.State == store.StateLive:
			continue
		}
		_ = s.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := bw.Write(appendEnd(nil, endOf(mf))); err != nil {
			return sent, err
		}
		return sent, flush()
	}
}

// hasSegment reports whether m lists segment i as sealed.
func hasSegment(m store.Manifest, i uint32) bool {
	n := len(m.Segments)
	return n > 0 && m.Segments[0].Index <= i && i <= m.Segments[n-1].Index
}

// nextIndex is the index the next sealed segment of m will have.
func nextIndex(m store.Manifest) uint32 {
	if n := len(m.Segments); n > 0 {
		return m.Segments[n-1].Index + 1
	}
	return 0
}
