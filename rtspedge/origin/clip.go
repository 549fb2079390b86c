package origin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/pion/rtp"

	"github.com/rtspmesh/rtspmesh/rtspedge/metainfo"
)

// Fixed RTP parameters of a packetized clip, so that Packetize is
// deterministic and tests can compare what the origin sends with it.
const (
	videoPayloadType = 96
	audioPayloadType = 97
	// payloadMaxSize leaves room in a 1472-byte packet for the meta-info
	// fields (at most 44 bytes) added in front of md.
	payloadMaxSize = 1400
	ptsClockRate   = 90000
	aacSamples     = 1024 // samples per AAC-LC access unit
)

var (
	initialSeq = [2]uint16{10000, 20000}
	initialTS  = [2]uint32{900000, 480000}
)

// Clip is an MPEG-TS file cut into the RTP packets the origin sends for it.
type Clip struct {
	// Desc describes the tracks: track 0 H.264 video, track 1 AAC audio
	// (when the file has one).
	Desc *description.Session
	// Duration is the length of one play: the end of the longest track,
	// in whole milliseconds. A live loop restarts after Duration.
	Duration time.Duration
	// Packets in send order. TT is whole milliseconds from presentation
	// start; PN is the index; FT and KeyStart are set on video packets
	// (the key start is the first packet of an access unit holding an IDR,
	// with the SPS/PPS in front of it). RTP is the plain packet; the origin
	// sends it with its own SSRC and, for a live loop, with sequence numbers
	// and timestamps advanced by the loop count.
	Packets []Packet

	keyStarts []int    // indexes of KeyStart packets, ascending
	seq       []uint16 // per packet: its RTP sequence number
	ts        []uint32 // per packet: its RTP timestamp
	perTrack  []int    // packets per track in one loop
	clockRate []uint32 // per track
}

// Packet is one RTP packet of a clip with its meta-info. It mirrors
// store.Packet (FT numbers as store.FrameType, KeyStart as
// store.FlagKeyStart) without making this package depend on the store.
type Packet struct {
	Track    uint8         // index into Clip.Desc.Medias
	TT       time.Duration // transmit time from presentation start, whole ms
	FT       uint16        // frame type (video only)
	PN       uint64        // packet number from stream start
	KeyStart bool          // first packet of an access unit holding an IDR
	RTP      []byte        // the plain RTP packet
}

// Tracks is the number of tracks.
func (c *Clip) Tracks() int { return len(c.Desc.Medias) }

type auPacket struct {
	track    int
	tt       time.Duration
	ft       uint16
	keyStart bool
	pkt      *rtp.Packet
}

// Packetize reads an MPEG-TS file holding one H.264 track and optionally one
// AAC track and returns its RTP packets with their tt/ft/pn. It is exactly
// what the origin serves for the file (except the SSRC, which each session
// stream picks).
func Packetize(ts []byte) (*Clip, error) {
	d, err := demux(ts)
	if err != nil {
		return nil, err
	}
	// Presentation start: the earliest time of any track.
	t0 := d.vaus[0].dts
	if len(d.apes) > 0 && d.apes[0].pts < t0 {
		t0 = d.apes[0].pts
	}

	h264f := h264Format(d.vaus)
	desc := &description.Session{Medias: []*description.Media{{
		Type: description.MediaTypeVideo, Formats: []format.Format{h264f},
	}}}
	c := &Clip{Desc: desc, perTrack: []int{0}, clockRate: []uint32{ptsClockRate}}
	video, end, err := packetizeVideo(h264f, d.vaus, t0)
	if err != nil {
		return nil, err
	}
	var audio []auPacket
	if d.aConf != nil && len(d.apes) > 0 {
		af := &format.MPEG4Audio{
			PayloadTyp: audioPayloadType, ProfileLevelID: 1, Config: d.aConf,
			SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
		}
		desc.Medias = append(desc.Medias, &description.Media{
			Type: description.MediaTypeAudio, Formats: []format.Format{af},
		})
		var aEnd time.Duration
		if audio, aEnd, err = packetizeAudio(af, d.apes, t0); err != nil {
			return nil, err
		}
		c.perTrack = append(c.perTrack, 0)
		c.clockRate = append(c.clockRate, uint32(d.aConf.SampleRate))
		end = max(end, aEnd)
	}
	c.Duration = end
	if err := c.number(video, audio); err != nil {
		return nil, err
	}
	return c, nil
}

// demuxed is what Packetize reads from an MPEG-TS file: the H.264 access
// units and the AAC PES packets, timestamps unwrapped on one time base.
type demuxed struct {
	vaus  []vAU
	apes  []aPES
	aConf *mpeg4audio.AudioSpecificConfig // nil without an AAC track
}

type vAU struct {
	pts, dts int64
	au       [][]byte
}

type aPES struct {
	pts int64
	aus [][]byte
}

// demux reads the first H.264 track and the first AAC track of ts.
func demux(ts []byte) (*demuxed, error) {
	r := &mpegts.Reader{R: bytes.NewReader(ts)}
	if err := r.Initialize(); err != nil {
		return nil, fmt.Errorf("packetize: read MPEG-TS: %w", err)
	}
	var vTrack, aTrack *mpegts.Track
	d := &demuxed{}
	for _, t := range r.Tracks() {
		switch c := t.Codec.(type) {
		case *mpegts.CodecH264:
			if vTrack == nil {
				vTrack = t
			}
		case *mpegts.CodecMPEG4Audio:
			if aTrack == nil {
				aTrack, d.aConf = t, &c.Config
			}
		}
	}
	if vTrack == nil {
		return nil, errors.New("packetize: no H.264 track")
	}
	// One decoder for every track: it unwraps the 33-bit clock relative to
	// the first timestamp it sees, and the tracks share the PCR time base.
	td := mpegts.TimeDecoder{}
	td.Initialize()
	r.OnDataH264(vTrack, func(pts, dts int64, au [][]byte) error {
		dd := td.Decode(dts)
		d.vaus = append(d.vaus, vAU{pts: td.Decode(pts), dts: dd, au: au})
		return nil
	})
	if aTrack != nil {
		r.OnDataMPEG4Audio(aTrack, func(pts int64, aus [][]byte) error {
			d.apes = append(d.apes, aPES{pts: td.Decode(pts), aus: aus})
			return nil
		})
	}
	r.OnDecodeError(func(error) {})
	for {
		err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("packetize: read MPEG-TS: %w", err)
		}
	}
	if len(d.vaus) == 0 {
		return nil, errors.New("packetize: no video access units")
	}
	return d, nil
}

// h264Format is the video format, with the first SPS and PPS of vaus.
func h264Format(vaus []vAU) *format.H264 {
	h264f := &format.H264{PayloadTyp: videoPayloadType, PacketizationMode: 1}
	for _, a := range vaus {
		for _, n := range a.au {
			switch n[0] & 0x1f {
			case 7:
				if h264f.SPS == nil {
					h264f.SPS = n
				}
			case 8:
				if h264f.PPS == nil {
					h264f.PPS = n
				}
			}
		}
		if h264f.SPS != nil && h264f.PPS != nil {
			break
		}
	}
	return h264f
}

// packetizeVideo packs the access units into RTP (track 0), tt from the DTS
// and RTP time from the PTS, both from t0. end is past the last frame.
func packetizeVideo(h264f *format.H264, vaus []vAU, t0 int64) (video []auPacket, end time.Duration, err error) {
	venc, err := h264f.CreateEncoder()
	if err != nil {
		return nil, 0, fmt.Errorf("packetize: %w", err)
	}
	venc.PayloadMaxSize = payloadMaxSize
	venc.InitialSequenceNumber = &initialSeq[0]
	if err := venc.Init(); err != nil {
		return nil, 0, fmt.Errorf("packetize: %w", err)
	}
	var frameDur int64 = ptsClockRate / 25
	for i, a := range vaus {
		if i > 0 && a.dts > vaus[i-1].dts {
			frameDur = a.dts - vaus[i-1].dts
		}
		pkts, err := venc.Encode(a.au)
		if err != nil {
			return nil, 0, fmt.Errorf("packetize: video access unit %d: %w", i, err)
		}
		ft, key := h264AUType(a.au)
		tt := ticksToMS(a.dts-t0, ptsClockRate)
		for j, p := range pkts {
			p.Timestamp = initialTS[0] + uint32(a.pts-t0)
			video = append(video, auPacket{track: 0, tt: tt, ft: ft, keyStart: key && j == 0, pkt: p})
		}
		end = max(end, ticksToMS(a.pts-t0+frameDur, ptsClockRate)+time.Millisecond)
	}
	return video, end, nil
}

// packetizeAudio packs the AAC access units into RTP (track 1), one access
// unit per packet, on the sample clock from t0. end is past the last one.
func packetizeAudio(af *format.MPEG4Audio, apes []aPES, t0 int64) (audio []auPacket, end time.Duration, err error) {
	sr := int64(af.Config.SampleRate)
	if sr <= 0 {
		return nil, 0, errors.New("packetize: AAC sample rate unknown")
	}
	aenc, err := af.CreateEncoder()
	if err != nil {
		return nil, 0, fmt.Errorf("packetize: %w", err)
	}
	aenc.InitialSequenceNumber = &initialSeq[1]
	aenc.PayloadMaxSize = payloadMaxSize
	if err := aenc.Init(); err != nil {
		return nil, 0, fmt.Errorf("packetize: %w", err)
	}
	for _, pes := range apes {
		base := (pes.pts - t0) * sr / ptsClockRate
		for k, au := range pes.aus {
			samples := base + int64(k)*aacSamples
			pkts, err := aenc.Encode([][]byte{au})
			if err != nil {
				return nil, 0, fmt.Errorf("packetize: audio: %w", err)
			}
			tt := ticksToMS(samples, sr)
			for _, p := range pkts {
				p.Timestamp = initialTS[1] + uint32(samples)
				audio = append(audio, auPacket{track: 1, tt: tt, pkt: p})
			}
			end = max(end, ticksToMS(samples+aacSamples, sr)+time.Millisecond)
		}
	}
	return audio, end, nil
}

// number merges the tracks' packets by tt, video first on ties (each list
// is already in order), into c.Packets with their pn, and indexes them.
func (c *Clip) number(video, audio []auPacket) error {
	all := append(video, audio...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].tt < all[j].tt })
	c.Packets = make([]Packet, len(all))
	for i, p := range all {
		raw, err := p.pkt.Marshal()
		if err != nil {
			return fmt.Errorf("packetize: %w", err)
		}
		sp := Packet{Track: uint8(p.track), TT: p.tt, PN: uint64(i), RTP: raw}
		if p.track == 0 {
			sp.FT = p.ft
			if p.keyStart {
				sp.KeyStart = true
				c.keyStarts = append(c.keyStarts, i)
			}
		}
		c.perTrack[p.track]++
		c.Packets[i] = sp
		c.seq = append(c.seq, p.pkt.SequenceNumber)
		c.ts = append(c.ts, p.pkt.Timestamp)
	}
	if len(c.keyStarts) == 0 {
		return errors.New("packetize: no IDR access unit")
	}
	return nil
}

// ticksToMS converts clock ticks to whole milliseconds (floor, never negative).
func ticksToMS(ticks, rate int64) time.Duration {
	if ticks < 0 {
		return 0
	}
	return time.Duration(ticks*1000/rate) * time.Millisecond
}

// h264AUType is the frame type of an access unit and whether it holds an IDR.
func h264AUType(au [][]byte) (uint16, bool) {
	ft := metainfo.FrameUnknown
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if n[0]&0x1f == 5 {
			return metainfo.FrameKey, true
		}
		if t := n[0] & 0x1f; t == 1 && ft == metainfo.FrameUnknown {
			ft, _ = metainfo.FrameTypeH264(n)
		}
	}
	return ft, false
}
