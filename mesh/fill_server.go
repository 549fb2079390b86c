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
	// serviceName names, in libp2p's resource manager, the fills this
	// node runs (serveService the fills it serves).
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

	if err := s.Scope().SetService(serveService); err != nil {
		m.log.Debug("fill stream refused by resource manager", "err", err)
		_ = s.Reset()
		return
	}
	// Within the peer's serving budget (limits.go), so at any priority.
	if err := s.Scope().ReserveMemory(serveReserve, network.ReservationPriorityAlways); err != nil {
		m.log.Debug("fill stream refused: no memory", "err", err)
		_ = s.Reset()
		return
	}
	defer s.Scope().ReleaseMemory(serveReserve)
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
	if f := m.cfg.TrustedOnly; f != nil && f(req.Key) && !m.trust.trusts(s.Conn().RemotePeer()) {
		log.Info("fill refused: the origin's recordings go to trusted signers only", "peer", remote)
		_ = s.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, _ = s.Write([]byte{statusNotFound})
		_ = s.Close()
		return
	}

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
	w := answerWriter{s: s, bw: bufio.NewWriterSize(s, writeBuffer)}
	mf, err := m.st.Manifest(req.Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, w.status(statusNotFound)
	case err != nil:
		_ = w.status(statusServerError)
		return 0, fmt.Errorf("manifest: %w", err)
	}
	if len(mf.Segments) > 0 && mf.Segments[len(mf.Segments)-1].Seal.IsZero() {
		// Stored before provenance (or by a node without a key): no peer
		// would take it.
		return 0, w.status(statusNotFound)
	}
	from, ok := startAt(mf, req.From)
	if !ok {
		return 0, w.status(statusUnavailable)
	}
	head, err := appendOK(nil, mf)
	if err != nil {
		_ = w.status(statusServerError)
		return 0, err
	}
	if err := w.write(head); err != nil {
		return 0, err
	}

	if mf.Live && m.cfg.ServingLive != nil {
		defer m.cfg.ServingLive(req.Key)()
	}
	if from == FromLiveEdge {
		return 0, m.serveLiveTail(ctx, w, mf, mf.NextSegment())
	}
	return m.sendSegments(ctx, w, req.Key, from, mf, req.Open)
}

// startAt is the segment an answer to a request from `from` starts at;
// false when the recording cannot serve it now.
func startAt(mf store.Manifest, from uint32) (uint32, bool) {
	switch {
	case mf.BetweenSources():
		// Between two upstreams: a neighbour relaying from it now could close
		// a loop (it may be this node's next source).
		return 0, false
	case from == FromLiveEdge:
		return from, mf.Live
	case len(mf.Segments) > 0 && from < mf.Segments[0].Index:
		if !mf.Live || from != 0 {
			return 0, false // dropped from a live window
		}
		return mf.Segments[0].Index, true // a live window: from its oldest segment
	}
	return from, true
}

// sendSegments sends key's sealed segments from index i on, waiting for
// those its fill has not sealed yet, then the end frame; a live recording
// goes on packet by packet after its sealed past instead, and so does an
// on-demand one when the client asked for its open segment (open). mf is
// the manifest the answer was made from. It returns the number of segments
// sent whole.
func (m *Mesh) sendSegments(ctx context.Context, w answerWriter, key string, i uint32, mf store.Manifest, open bool) (int, error) {
	var hdr []byte
	sent := 0
	digest := HeaderDigest(&mf) // of the answer: what the open tail's checkpoints sign
	ahead := segmentAhead{st: m.st, key: key, ch: make(chan loadedSegment, 1)}
	defer ahead.wg.Wait()
	for {
		data, si, err := ahead.get(i) // read only: written out as it is
		if err == nil {
			ahead.start(i + 1)
			hdr = appendSegmentHeader(hdr[:0], i, si.Hash, &si.Seal, len(data))
			if err := w.write(hdr, data); err != nil {
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
			return sent, m.serveLiveTail(ctx, w, mf, i)
		}
		if open && mf.State == store.StateFilling {
			return sent, m.serveOpenTail(ctx, w, key, digest, i)
		}
		var ended bool
		if mf, ended, err = m.awaitSegment(ctx, w, key, i); err != nil {
			return sent, err
		}
		if ended {
			return sent, w.end(mf)
		}
	}
}

// segmentAhead reads the segment after the one being sent from the store
// while that one is written out: a fill's segments are seldom in the
// store's segment cache, so each is read from disk (and its checksum
// verified), which then overlaps the network. Segments are read into two
// buffers in turn (store.Store.SegmentInto): one is read ahead into while
// the other is written out, which copies it.
type segmentAhead struct {
	st      *store.Store
	key     string
	ch      chan loadedSegment // capacity 1: what the read in flight found
	wg      sync.WaitGroup     // the read in flight
	index   uint32             // the segment it reads
	reading bool
	bufs    [2][]byte // the read in flight owns bufs[next^1]
	next    int       // the buffer the next read goes to
}

type loadedSegment struct {
	data []byte
	si   store.SegmentInfo
	err  error
}

// start reads segment i on a goroutine of its own.
func (a *segmentAhead) start(i uint32) {
	a.index, a.reading = i, true
	buf := &a.bufs[a.next]
	a.next ^= 1
	a.wg.Go(func() {
		data, si, err := a.st.SegmentInto(a.key, i, buf)
		a.ch <- loadedSegment{data, si, err}
	})
}

// get returns segment i: what start read, or read now when that was
// another segment or failed (a segment not sealed then may be now). The
// bytes are good until the next get.
func (a *segmentAhead) get(i uint32) ([]byte, store.SegmentInfo, error) {
	if a.reading {
		a.reading = false
		if l := <-a.ch; l.err == nil && a.index == i {
			return l.data, l.si, nil
		}
	}
	buf := &a.bufs[a.next]
	a.next ^= 1
	return a.st.SegmentInto(a.key, i, buf)
}

// awaitSegment flushes what is buffered and waits up to KeepaliveInterval
// for segment i of key, which is not sealed yet; a keep-alive frame goes out
// when none came. It returns the manifest it saw, and ended when the
// recording ended before segment i.
func (m *Mesh) awaitSegment(ctx context.Context, w answerWriter, key string, i uint32) (store.Manifest, bool, error) {
	if err := w.flush(); err != nil {
		return store.Manifest{}, false, err
	}
	wctx, cancel := context.WithTimeout(ctx, KeepaliveInterval)
	mf, err := m.st.WaitSegment(wctx, key, i)
	cancel()
	switch {
	case ctx.Err() != nil:
		return mf, false, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		_ = w.bw.WriteByte(frameKeepalive)
		return mf, false, w.flush()
	case err != nil:
		return mf, false, fmt.Errorf("wait segment %d: %w", i, err)
	case hasSegment(mf, i):
		return mf, false, nil
	case i < mf.NextSegment():
		return mf, false, fmt.Errorf("segment %d: %w", i, store.ErrBehindWindow)
	case mf.State == store.StateFilling || mf.State == store.StateLive:
		return mf, false, nil
	}
	return mf, true, nil
}

// answerWriter buffers one answer's bytes; every write and flush has
// writeTimeout.
type answerWriter struct {
	s  network.Stream
	bw *bufio.Writer
}

func (w answerWriter) write(bs ...[]byte) error {
	_ = w.s.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, b := range bs {
		if _, err := w.bw.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// buffer is write for many small frames: the deadline is set only when
// the frame does not fit what is buffered (flush sets it otherwise).
func (w answerWriter) buffer(b []byte) error {
	if len(b) > w.bw.Available() {
		_ = w.s.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	_, err := w.bw.Write(b)
	return err
}

func (w answerWriter) flush() error {
	_ = w.s.SetWriteDeadline(time.Now().Add(writeTimeout))
	return w.bw.Flush()
}

// end writes the end frame of mf, the answer's last, and flushes.
func (w answerWriter) end(mf store.Manifest) error {
	if err := w.write(appendEnd(nil, endOf(mf))); err != nil {
		return err
	}
	return w.flush()
}

// status answers with a status byte alone.
func (w answerWriter) status(st byte) error {
	_ = w.bw.WriteByte(st)
	return w.flush()
}

// hasSegment reports whether m lists segment i as sealed.
func hasSegment(m store.Manifest, i uint32) bool {
	n := len(m.Segments)
	return n > 0 && m.Segments[0].Index <= i && i <= m.Segments[n-1].Index
}
