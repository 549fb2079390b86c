package testkit

import (
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// WritevPacketCost is the floor a server's CPU per delivered packet is held
// against: the CPU time one thread spends per 1400-byte RTP packet writing
// RTSP interleaved frames ('$', channel, length, packet) to a loopback TCP
// connection, 32 frames per writev, with nothing else done per packet. The
// reader drains on another goroutine and is not counted. Benchmarks report
// their per-packet figures as a ratio to it, measured in the same run, so
// that a loaded machine moves both.
func WritevPacketCost(tb testing.TB) time.Duration {
	tb.Helper()
	const (
		batch    = 32
		payload  = 1400
		maxBatch = 20000 // 640 000 packets, about 0.9 GB
		maxTime  = 2 * time.Second
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	drained := make(chan struct{})
	go func() { // ends when the writer closes its side
		defer close(drained)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	frames := make([][]byte, batch)
	for i := range frames {
		f := make([]byte, 4+payload)
		f[0], f[1], f[2], f[3] = '$', 0, byte(payload>>8), byte(payload&0xff)
		frames[i] = f
	}

	runtime.LockOSThread()
	cpu0 := threadCPU(tb)
	start := time.Now()
	n := 0
	for ; n < maxBatch && time.Since(start) < maxTime; n++ {
		bufs := net.Buffers(append([][]byte(nil), frames...))
		if _, err := bufs.WriteTo(c); err != nil {
			runtime.UnlockOSThread()
			tb.Fatalf("writev: %v", err)
		}
	}
	cpu := threadCPU(tb) - cpu0
	runtime.UnlockOSThread()
	_ = c.Close()
	<-drained
	return cpu / time.Duration(n*batch)
}

// threadCPU is the CPU time (user + system) of the calling OS thread.
func threadCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SendtoPacketCost is the CPU time one thread spends per packet sending
// 1412-byte RTP-sized datagrams, one sendto(2) each, to a loopback UDP
// socket that another goroutine drains (not counted): the floor of a UDP
// player's packets, which leave one datagram at a time. A datagram the
// reader's buffer had no room for is dropped by the kernel and counted
// all the same (the sender's work was done).
func SendtoPacketCost(tb testing.TB) time.Duration {
	tb.Helper()
	const (
		size     = 12 + 1400
		maxSends = 400000
		maxTime  = 2 * time.Second
	)
	rc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	drained := make(chan struct{})
	go func() { // ends when rc is closed
		defer close(drained)
		buf := make([]byte, 2048)
		for {
			if _, _, err := rc.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	sc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		_ = rc.Close()
		tb.Fatal(err)
	}
	to := rc.LocalAddr().(*net.UDPAddr)
	pkt := make([]byte, size)
	runtime.LockOSThread()
	cpu0 := threadCPU(tb)
	start := time.Now()
	n := 0
	for ; n < maxSends && time.Since(start) < maxTime; n++ {
		if _, err := sc.WriteToUDP(pkt, to); err != nil {
			runtime.UnlockOSThread()
			_, _ = sc.Close(), rc.Close()
			tb.Fatalf("sendto: %v", err)
		}
	}
	cpu := threadCPU(tb) - cpu0
	runtime.UnlockOSThread()
	_, _ = sc.Close(), rc.Close()
	<-drained
	return cpu / time.Duration(n)
}
