package rtspedge

import (
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
	"github.com/rtspmesh/rtspmesh/store"
)

// originTrack turns one track's packets from the origin into stored packets:
// meta-info decoded when the origin sends it, tt/ft/pn derived otherwise.
type originTrack struct {
	index   uint8
	media   *description.Media
	clock   uint32
	video   bool
	fields  metainfo.Fields   // agreed meta-info fields; nil for plain RTP
	tracker *metainfo.Tracker // frame types of a video codec we can parse

	// NPT mapping of this PLAY: baseTS is the RTP timestamp at baseTT.
	haveBase bool
	baseTS   uint32
	baseTT   time.Duration
	started  bool   // a packet of this PLAY was seen
	lastTS   uint32 // RTP timestamp of the previous packet
	ext      int64  // unwrapped lastTS - baseTS
}

func newOriginTrack(i uint8, medi *description.Media, tr store.Track) *originTrack {
	t := &originTrack{index: i, media: medi, clock: tr.ClockRate, video: medi.Type == description.MediaTypeVideo}
	var classify func([]byte) (uint16, bool)
	switch medi.Formats[0].(type) {
	case *format.H264:
		classify = metainfo.FrameTypeH264
	case *format.H265:
		classify = metainfo.FrameTypeH265
	case *format.MJPEG:
		classify = metainfo.FrameTypeMJPEG
	}
	if classify != nil {
		t.tracker = &metainfo.Tracker{Classify: classify}
	}
	return t
}

// resetPlay forgets the NPT mapping of a previous PLAY.
func (t *originTrack) resetPlay() {
	t.haveBase, t.started, t.ext = false, false, 0
}

// controlPath is the path (and query) of the track's SETUP URL, to match
// RTP-Info entries.
func (t *originTrack) controlPath(baseURL *base.URL) string {
	u, err := t.media.URL(baseURL)
	if err != nil || u == nil {
		return ""
	}
	return urlPath(u)
}

func (t *originTrack) hasPN() bool { return t.fields.Has(metainfo.NamePN) }

// convert makes the stored packet of pkt (which it may change). ok is false
// for a packet that cannot be decoded. It runs under r.mu.
func (t *originTrack) convert(pkt *rtp.Packet, now time.Time, r *playRun) (store.Packet, bool) {
	var info metainfo.Info
	if t.fields != nil {
		var err error
		info, err = metainfo.Decode(pkt.Payload, t.fields)
		if err != nil || !info.HasMD {
			r.dropped++
			if r.dropped == 1 {
				r.o.log.Warn("undecodable meta-info packet from origin", "track", t.index, "err", err)
			}
			return store.Packet{}, false
		}
		pkt.Payload = info.MD
	}
	p := store.Packet{Track: t.index}
	if info.HasTT || info.HasFT || info.HasPN {
		p.Flags |= store.FlagMetaInfo
	}

	var ft uint16
	if t.tracker != nil {
		var key bool
		ft, key = t.tracker.Next(pkt.Payload, pkt.Timestamp, pkt.Marker)
		if key {
			p.Flags |= store.FlagKeyStart
		}
	}
	if info.HasFT {
		ft = info.FT
	}
	if t.video {
		p.FT = store.FrameType(ft)
	}

	nptTT := t.npt(pkt.Timestamp, now, r)
	if info.HasTT {
		p.TT = info.TT
	} else {
		p.TT = nptTT
	}
	p.PN = info.PN // derived numbers are given when the packet is kept

	// pion's Marshal fills padding from PaddingSize; a rebuilt packet has none.
	pkt.Padding, pkt.PaddingSize = false, 0
	n := pkt.MarshalSize()
	if cap(r.buf) < n {
		r.buf = make([]byte, n, max(n, 2048))
	}
	m, err := pkt.MarshalTo(r.buf[:n])
	if err != nil {
		r.dropped++
		return store.Packet{}, false
	}
	p.RTP = r.buf[:m]
	return p, true
}

// npt maps an RTP timestamp to NPT through the PLAY answer's RTP-Info and
// Range; without an RTP-Info entry the track's first packet is placed by its
// arrival time after the PLAY answer (scaled by the delivery speed), the
// only clue left.
func (t *originTrack) npt(ts uint32, now time.Time, r *playRun) time.Duration {
	arrival := r.rngStart + time.Duration(float64(max(now.Sub(r.started), 0))*r.speed)
	if t.clock == 0 {
		return arrival
	}
	if !t.started {
		t.started = true
		if !t.haveBase {
			t.haveBase, t.baseTS, t.baseTT = true, ts, arrival
		}
		t.ext = int64(int32(ts - t.baseTS))
	} else {
		t.ext += int64(int32(ts - t.lastTS))
	}
	t.lastTS = ts
	return max(t.baseTT+store.TicksToDuration(t.ext, t.clock), 0)
}
