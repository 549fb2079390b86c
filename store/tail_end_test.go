package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// TestTailReaderAtFinish: a reader at the tail of a recording being
// written, as a player's replay reads it (a blocking Next, then TryNext
// until ErrWouldBlock, then Release of what it read), gets every packet
// exactly once and in order, then io.EOF, when the writer appends the
// recording's last packets in a burst (sealing segments on the way) and
// finishes at once — as a fill does when an origin's last packets and
// its BYE arrive together. Each iteration stops the reader at another
// place of the open segment before the burst, and has it read the burst
// while it is appended, or from half-way through it, or only once the
// recording is finished (its segment sealed and stored under it); on disk
// the reader reads sealed segments by chunks, in memory decoded.
func TestTailReaderAtFinish(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			t.Parallel()
			opts := Options{SegmentBytes: 16 << 10, paced: true}
			var s *Store
			if disk {
				var err error
				if s, err = Open(t.TempDir(), opts); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
			} else {
				s = memStore(t, opts)
			}
			pk := synth(defaultSpec, 2*time.Second) // 250 packets, 16 KiB segments of about 12
			iterations := 150
			if testing.Short() {
				iterations = 30
			}
			for i := range iterations {
				tailAtFinish(t, s, fmt.Sprintf("k%d", i), pk, i)
			}
		})
	}
}

// tailAtFinish writes pk as key with a reader at its tail: the first
// packets one by one (the reader catches up with each), the last ones
// (between 1 and 40, by i) in a burst, then Finish; the reader goes on
// past the first packets during the burst, from half-way through it, or
// after Finish (by i). It fails the test unless the reader got every
// packet once, in order, then io.EOF.
func tailAtFinish(t *testing.T, s *Store, key string, pk []Packet, i int) {
	t.Helper()
	w, err := s.Create(Manifest{Key: key, Tracks: avTracks(), SDP: []byte("v=0\r\n"), Source: SourceOrigin})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReader(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	burst := 1 + i%40
	head := len(pk) - burst

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got := make(chan int, len(pk)+2) // the count read so far, after each read (at most one a packet, and the end)
	done := make(chan error, 1)
	hold := make(chan struct{}) // closed when the reader may read past head
	go func() { done <- replayRead(ctx, r, pk, head, hold, got) }()
	at := []int{0, burst / 2, burst}[i%3] // of the burst appended when hold is closed

	read := 0
	for j := range pk[:head] {
		if err := w.Append(pk[j]); err != nil {
			t.Fatal(err)
		}
		for read < j+1 {
			select {
			case read = <-got:
			case err := <-done:
				t.Fatalf("%s: reader ended after %d of %d packets appended: %v", key, read, j+1, err)
			}
		}
	}
	for j := range pk[head:] {
		if j == at {
			close(hold)
		}
		if err := w.Append(pk[head+j]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(StateComplete); err != nil {
		t.Fatal(err)
	}
	if at == burst {
		close(hold)
	}
	if err := <-done; err != nil {
		t.Fatalf("%s (burst of %d after %d): %v", key, burst, head, err)
	}
}

// replayRead reads r as the replay does and checks each packet against
// want; it sends the count read after each read to got, waits for hold
// once it read head packets, and returns nil when it read all of want
// then io.EOF.
func replayRead(ctx context.Context, r *Reader, want []Packet, head int, hold <-chan struct{}, got chan<- int) error {
	n := 0
	check := func(p Packet) error {
		if n >= len(want) {
			return fmt.Errorf("packet %d (pn %d) after the last one", n, p.PN)
		}
		if !samePacket(p, want[n]) {
			return fmt.Errorf("packet %d: pn %d track %d, want pn %d track %d", n, p.PN, p.Track, want[n].PN, want[n].Track)
		}
		n++
		return nil
	}
	for {
		if n == head {
			<-hold
		}
		p, err := r.Next(ctx)
		for err == nil {
			if err = check(p); err != nil {
				return err
			}
			if n == head {
				break
			}
			p, err = r.TryNext()
		}
		r.Release(uint64(n))
		got <- n
		switch {
		case err == nil, errors.Is(err, ErrWouldBlock): // at head, or at the tail
		case errors.Is(err, io.EOF):
			if n != len(want) {
				return fmt.Errorf("io.EOF after %d packets of %d", n, len(want))
			}
			if _, err := r.TryNext(); !errors.Is(err, io.EOF) {
				return fmt.Errorf("after io.EOF: %v, want io.EOF again", err)
			}
			return nil
		default:
			return fmt.Errorf("after %d packets: %w", n, err)
		}
	}
}
