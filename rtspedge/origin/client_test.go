package origin

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/internal/testkit"
)

// player is a gortsplib client that records what it receives.
type player struct {
	t    *testing.T
	c    *gortsplib.Client
	desc *description.Session
	u    *base.URL

	mu        sync.Mutex
	pkts      []received
	rtcps     []receivedRTCP
	byes      int
	responses map[base.Method][]*base.Response
	last      base.Method
	extra     map[base.Method]base.Header // headers added to requests
	noRange   bool                        // strip the Range gortsplib always puts on PLAY
}

type received struct {
	track int
	pkt   rtp.Packet // payload copied
	at    time.Time
}

type receivedRTCP struct {
	track int
	pkt   rtcp.Packet
	at    time.Time
}

// dial connects over TCP, DESCRIBEs and SETUPs every track. extra headers
// are added to requests of the given method.
func dial(t *testing.T, addr, path string, extra map[base.Method]base.Header) *player {
	t.Helper()
	u, err := base.ParseURL("rtsp://" + addr + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	p := &player{t: t, u: u, responses: map[base.Method][]*base.Response{}, extra: extra}
	p.c = &gortsplib.Client{
		Scheme:    u.Scheme,
		Host:      u.Host,
		Transport: &tcp,
		OnRequest: func(req *base.Request) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.last = req.Method
			for k, v := range p.extra[req.Method] {
				req.Header[k] = v
			}
			if p.noRange && req.Method == base.Play {
				delete(req.Header, "Range")
			}
		},
		OnResponse: func(res *base.Response) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.responses[p.last] = append(p.responses[p.last], res)
		},
	}
	if err := p.c.Start2(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.c.Close)
	desc, _, err := p.c.Describe(u)
	if err != nil {
		t.Fatalf("DESCRIBE %s: %v", u, err)
	}
	p.desc = desc
	if err := p.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("SETUP: %v", err)
	}
	p.c.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		cp := *pkt
		cp.Payload = slices.Clone(pkt.Payload)
		r := received{track: slices.Index(p.desc.Medias, m), pkt: cp, at: time.Now()}
		p.mu.Lock()
		p.pkts = append(p.pkts, r)
		p.mu.Unlock()
	})
	p.c.OnPacketRTCPAny(func(m *description.Media, pkt rtcp.Packet) {
		r := receivedRTCP{track: slices.Index(p.desc.Medias, m), pkt: pkt, at: time.Now()}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.rtcps = append(p.rtcps, r)
		if _, ok := pkt.(*rtcp.Goodbye); ok {
			p.byes++
		}
	})
	return p
}

// header returns header name of the i-th response to method.
func (p *player) header(method base.Method, i int, name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := p.responses[method]
	if i >= len(rs) {
		return ""
	}
	v := rs[i].Header[name]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (p *player) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pkts)
}

func (p *player) packets() []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pkts)
}

// waitFor polls cond until it holds or the deadline passes.
func (p *player) waitFor(what string, d time.Duration, cond func() bool) {
	p.t.Helper()
	if !testkit.Until(d, cond) {
		p.t.Fatalf("timed out after %v waiting for %s (%d packets)", d, what, p.count())
	}
}

// waitEnd waits for the RTCP BYE of every track.
func (p *player) waitEnd(d time.Duration) {
	p.t.Helper()
	p.waitFor("BYE on every track", d, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.byes >= len(p.desc.Medias)
	})
}
