package rtspedge

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
	"github.com/rtspmesh/rtspmesh/rtspedge/origin"
	"github.com/rtspmesh/rtspmesh/store"
)

// samePacket compares a stored packet with the origin's: RTP equal except
// the SSRC (each origin session picks its own).
func samePacket(t *testing.T, i int, got store.Packet, want origin.Packet, ttSlack time.Duration, meta bool) {
	t.Helper()
	var g, w rtp.Packet
	if err := g.Unmarshal(got.RTP); err != nil {
		t.Fatalf("packet %d: stored RTP: %v", i, err)
	}
	if err := w.Unmarshal(want.RTP); err != nil {
		t.Fatalf("packet %d: origin RTP: %v", i, err)
	}
	g.SSRC = w.SSRC
	if g.SequenceNumber != w.SequenceNumber || g.Timestamp != w.Timestamp || g.Marker != w.Marker ||
		g.PayloadType != w.PayloadType || !bytes.Equal(g.Payload, w.Payload) {
		t.Fatalf("packet %d: RTP differs: got seq %d ts %d len %d, want seq %d ts %d len %d",
			i, g.SequenceNumber, g.Timestamp, len(g.Payload), w.SequenceNumber, w.Timestamp, len(w.Payload))
	}
	if got.Track != want.Track || got.PN != want.PN || uint16(got.FT) != want.FT ||
		(got.Flags&store.FlagKeyStart != 0) != want.KeyStart {
		t.Fatalf("packet %d: got track %d pn %d ft %d key %v, want track %d pn %d ft %d key %v", i,
			got.Track, got.PN, got.FT, got.Flags&store.FlagKeyStart != 0, want.Track, want.PN, want.FT, want.KeyStart)
	}
	if d := got.TT - want.TT; d < -ttSlack || d > ttSlack {
		t.Fatalf("packet %d (track %d): tt %v, want %v ± %v", i, got.Track, got.TT, want.TT, ttSlack)
	}
	if (got.Flags&store.FlagMetaInfo != 0) != meta {
		t.Fatalf("packet %d: FlagMetaInfo %v, want %v", i, got.Flags&store.FlagMetaInfo != 0, meta)
	}
}

// readFromStart reads a recording from its start. A store reader starts at
// the first key frame, so the packets before it (audio at tt 0) are not
// read: off is how many, known from the first packet's number.
func readFromStart(t *testing.T, st *store.Store, key string) ([]store.Packet, int) {
	t.Helper()
	got := readAll(t, st, key)
	if len(got) == 0 {
		t.Fatal("no packets stored")
	}
	off := int(got[0].PN)
	if off > 2 || got[0].Flags&store.FlagKeyStart == 0 && off != 0 {
		t.Fatalf("reader starts at pn %d (key start %v)", off, got[0].Flags&store.FlagKeyStart != 0)
	}
	return got, off
}

// TestFillMatchesPacketize: with meta-info the stored tt/ft/pn are the
// origin's, exactly; without it the derived ones match what the origin would
// have sent (tt within the 1 ms the origin rounds to).
func TestFillMatchesPacketize(t *testing.T) {
	t.Parallel()
	clip, err := origin.Packetize(origin.SampleClip())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		disable bool
		slack   time.Duration
	}{
		{"meta-info", false, 0},
		{"derived", true, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, _ := startOrigin(t, origin.Config{DisableMetaInfo: tc.disable})
			st := newStore(t)
			m := fill(t, st, "k", originURL(o, samplePath), OriginRequest{AskMetaInfo: true, Speed: 8})
			if m.MetaInfo == tc.disable {
				t.Fatalf("manifest MetaInfo %v with origin meta-info disabled=%v", m.MetaInfo, tc.disable)
			}
			if m.Live || m.Duration < 19*time.Second || m.Duration > 21*time.Second {
				t.Fatalf("manifest live %v duration %v, want VOD of about 20s", m.Live, m.Duration)
			}
			if len(m.Tracks) != 2 || m.Tracks[0].Codec != "H264" || m.Tracks[1].Codec != "MPEG4-GENERIC" {
				t.Fatalf("tracks %+v", m.Tracks)
			}
			if m.Packets != uint64(len(clip.Packets)) {
				t.Fatalf("stored %d packets, origin sends %d", m.Packets, len(clip.Packets))
			}
			got, off := readFromStart(t, st, "k")
			for i := range got {
				samePacket(t, i+off, got[i], clip.Packets[i+off], tc.slack, !tc.disable)
			}
		})
	}
}

// TestResumeWithoutDuplicates: a fill stopped part-way and resumed into the
// same writer ends with exactly the origin's packets, once each.
func TestResumeWithoutDuplicates(t *testing.T) {
	t.Parallel()
	clip, err := origin.Packetize(origin.SampleClip())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		disable bool
	}{{"meta-info", false}, {"derived", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, _ := startOrigin(t, origin.Config{DisableMetaInfo: tc.disable})
			st := newStore(t)
			req := OriginRequest{URL: originURL(o, samplePath), Timeout: 5 * time.Second, AskMetaInfo: true, Speed: 8}
			os, err := OpenOrigin(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			m := os.Manifest()
			m.Key = "k"
			w, err := st.Create(m)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			runErr := make(chan error, 1)
			go func() { runErr <- os.Run(ctx, w) }()
			testkit.Eventually(t, 10*time.Second, "half the clip stored", func() bool {
				tt, _, ok := w.Last()
				return ok && tt > 9*time.Second
			})
			cancel()
			if err := <-runErr; !errors.Is(err, context.Canceled) {
				t.Fatalf("Run after cancel: %v, want context.Canceled", err)
			}
			os2, err := OpenOrigin(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if err := os2.Run(t.Context(), w); err != nil {
				t.Fatalf("resumed Run: %v", err)
			}
			if err := w.Finish(store.StateComplete); err != nil {
				t.Fatal(err)
			}
			got, off := readFromStart(t, st, "k")
			seen := map[uint64]bool{}
			for i, p := range got {
				if seen[p.PN] {
					t.Fatalf("packet %d: pn %d stored twice", i, p.PN)
				}
				seen[p.PN] = true
				if i > 0 && p.Track == got[i-1].Track && p.TT < got[i-1].TT {
					t.Fatalf("packet %d: tt goes back from %v to %v", i, got[i-1].TT, p.TT)
				}
			}
			if !tc.disable {
				// The origin numbers its packets: the copy is exact.
				if len(got)+off != len(clip.Packets) {
					t.Fatalf("stored %d packets, origin sends %d", len(got)+off, len(clip.Packets))
				}
				for i := range got {
					samePacket(t, i+off, got[i], clip.Packets[i+off], 0, true)
				}
				return
			}
			// Derived: no packet twice (by RTP sequence number per track), at most
			// the rest of the frame at the cut lost.
			type key struct {
				track uint8
				seq   uint16
			}
			seqs := map[key]bool{}
			for i, p := range got {
				var h rtp.Header
				if _, err := h.Unmarshal(p.RTP); err != nil {
					t.Fatal(err)
				}
				k := key{p.Track, h.SequenceNumber}
				if seqs[k] {
					t.Fatalf("packet %d: track %d seq %d stored twice", i, p.Track, h.SequenceNumber)
				}
				seqs[k] = true
			}
			if missing := len(clip.Packets) - len(got) - off; missing < 0 || missing > 60 {
				t.Fatalf("stored %d packets of %d", len(got)+off, len(clip.Packets))
			}
		})
	}
}

// TestOriginDiesMidStream: Run returns an error, the recording can be
// finished partial, nothing panics.
func TestOriginDiesMidStream(t *testing.T) {
	t.Parallel()
	o, stop := startOrigin(t, origin.Config{})
	st := newStore(t)
	os, err := OpenOrigin(t.Context(), OriginRequest{URL: originURL(o, samplePath), Timeout: 2 * time.Second, AskMetaInfo: true, Speed: 4})
	if err != nil {
		t.Fatal(err)
	}
	m := os.Manifest()
	m.Key = "k"
	w, err := st.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- os.Run(t.Context(), w) }()
	testkit.Eventually(t, 10*time.Second, "some packets stored", func() bool {
		tt, _, ok := w.Last()
		return ok && tt > 2*time.Second
	})
	stop()
	select {
	case err := <-runErr:
		if err == nil || !errors.Is(err, ErrOriginUnavailable) {
			t.Fatalf("Run after the origin died: %v, want ErrOriginUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the origin died")
	}
	if err := w.Finish(store.StatePartial); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Manifest("k"); err != nil || m.State != store.StatePartial || m.Packets == 0 {
		t.Fatalf("manifest after partial finish: state %v packets %d err %v", m.State, m.Packets, err)
	}
}

// TestOriginUnavailable: nothing listening, or a server that never answers:
// ErrOriginUnavailable within the timeout.
func TestOriginUnavailable(t *testing.T) {
	t.Parallel()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	for _, tc := range []struct{ name, addr string }{{"refused", closedAddr}, {"silent", silent.Addr().String()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 700 * time.Millisecond
			start := time.Now()
			_, err := OpenOrigin(t.Context(), OriginRequest{
				URL: "rtsp://alice:s3cretpw@" + tc.addr + "/x.ts", Timeout: timeout, AskMetaInfo: true})
			took := time.Since(start)
			if !errors.Is(err, ErrOriginUnavailable) {
				t.Fatalf("err %v, want ErrOriginUnavailable", err)
			}
			if took > timeout+500*time.Millisecond {
				t.Fatalf("took %v with timeout %v", took, timeout)
			}
			if strings.Contains(err.Error(), "s3cretpw") || strings.Contains(err.Error(), "alice") {
				t.Fatalf("credentials in error: %v", err)
			}
		})
	}
}

// fakeOrigin is a gortsplib server answering DESCRIBE with body.
type fakeOrigin struct{ body []byte }

func (f *fakeOrigin) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK, Body: f.body}, nil, nil
}

// TestMalformedSDP: an origin whose description does not parse gives a clear
// error (ErrMalformedSDP), without the credentials.
func TestMalformedSDP(t *testing.T) {
	t.Parallel()
	srv := &gortsplib.Server{Handler: &fakeOrigin{body: []byte("v=0\r\nthis is not sdp\r\nm=video x\r\n")}, RTSPAddress: "127.0.0.1:0"}
	var ln net.Listener
	srv.Listen = func(network, addr string) (net.Listener, error) {
		var err error
		ln, err = net.Listen(network, addr)
		return ln, err
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	_, err := OpenOrigin(t.Context(), OriginRequest{URL: "rtsp://bob:pa55word@" + ln.Addr().String() + "/x", Timeout: 2 * time.Second})
	if !errors.Is(err, ErrMalformedSDP) {
		t.Fatalf("err %v, want ErrMalformedSDP", err)
	}
	if strings.Contains(err.Error(), "pa55word") {
		t.Fatalf("credentials in error: %v", err)
	}
	t.Logf("error: %v", err)
}

// TestCacheable reads Cache-Control from the origin.
func TestCacheable(t *testing.T) {
	t.Parallel()
	o, _ := startOrigin(t, origin.Config{CacheControl: map[string]string{"private.ts": "private", "nocache.ts": "no-cache"},
		Media: map[string][]byte{samplePath: origin.SampleClip(), "private.ts": origin.SampleClip(), "nocache.ts": origin.SampleClip()}})
	for path, want := range map[string]bool{samplePath: true, "private.ts": false, "nocache.ts": false} {
		os, err := OpenOrigin(t.Context(), OriginRequest{URL: originURL(o, path), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got := os.Cacheable(); got != want {
			t.Errorf("%s: Cacheable %v, want %v", path, got, want)
		}
		os.Close()
	}
}

// TestLiveOrigin: an open-ended origin is live (never VOD), Run relays it
// until ctx ends.
func TestLiveOrigin(t *testing.T) {
	t.Parallel()
	o, _ := startOrigin(t, origin.Config{Media: map[string][]byte{}, Live: map[string][]byte{"live.ts": origin.SampleClip()}})
	st := newStore(t)
	os, err := OpenOrigin(t.Context(), OriginRequest{URL: originURL(o, "live.ts"), Timeout: 5 * time.Second, AskMetaInfo: true})
	if err != nil {
		t.Fatal(err)
	}
	m := os.Manifest()
	if !m.Live || m.Duration != 0 {
		t.Fatalf("live origin: manifest live %v duration %v", m.Live, m.Duration)
	}
	m.Key = "live"
	w, err := st.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if err := os.Run(ctx, w); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("live Run: %v, want the context's deadline", err)
	}
	if _, _, ok := w.Last(); !ok {
		t.Fatal("nothing relayed from the live origin")
	}
	_ = w.Finish(store.StatePartial)
}
