package rtspedge

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestAwaitAnswer: a UDP play's replay waits for the connection's next
// Write (gortsplib's PLAY answer) before its first packet, and goes on
// once it is written.
func TestAwaitAnswer(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	go func() { _, _ = io.Copy(io.Discard, b) }()
	bc := newBatchConn(a)
	bc.holdForAnswer()
	done := make(chan struct{})
	go func() {
		bc.awaitAnswer()
		close(done)
	}()
	// Nothing to wait for but time: the replay must still be waiting
	// when no answer has been written for a while.
	select {
	case <-done:
		t.Fatal("the replay went on before the PLAY answer was written")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := bc.Write([]byte("RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(slowWrite / 2):
		t.Fatal("the replay still waits after the PLAY answer was written")
	}
	// Not held: no wait.
	bc.awaitAnswer()
}
