package origin

import (
	"sort"
	"time"
)

// sent is a packet as sent at an absolute index: a live loop repeats the clip
// with tt, pn, sequence numbers and timestamps advanced per loop.
type sent struct {
	track int
	tt    time.Duration
	ft    uint16
	seq   uint16
	ts    uint32
	raw   []byte // the clip's packet (loop 0 header)
}

// at returns the packet at absolute index n (n >= len(Packets) only for live).
func (c *Clip) at(n int64) sent {
	total := int64(len(c.Packets))
	k, i := n/total, n%total
	p := &c.Packets[i]
	tr := int(p.Track)
	return sent{
		track: tr,
		tt:    time.Duration(k)*c.Duration + p.TT,
		ft:    p.FT,
		seq:   c.seq[i] + uint16(k*int64(c.perTrack[tr])),
		ts:    c.ts[i] + uint32(k*int64(c.Duration/time.Millisecond)*int64(c.clockRate[tr])/1000),
		raw:   p.RTP,
	}
}

// seek returns the index of the key start at or before t; 0 when t is before
// the first key frame (so a play from 0 includes what precedes it).
func (c *Clip) seek(t time.Duration) int64 {
	j := sort.Search(len(c.keyStarts), func(j int) bool { return c.Packets[c.keyStarts[j]].TT > t }) - 1
	if j < 0 {
		return 0
	}
	return int64(c.keyStarts[j])
}

// liveSeek returns the absolute index of the latest key start at or before
// live position pos (the first key start when there is none yet).
func (c *Clip) liveSeek(pos time.Duration) int64 {
	if pos < 0 {
		pos = 0
	}
	k := int64(pos / c.Duration)
	within := pos - time.Duration(k)*c.Duration
	j := sort.Search(len(c.keyStarts), func(j int) bool { return c.Packets[c.keyStarts[j]].TT > within }) - 1
	total := int64(len(c.Packets))
	switch {
	case j >= 0:
		return k*total + int64(c.keyStarts[j])
	case k > 0:
		return (k-1)*total + int64(c.keyStarts[len(c.keyStarts)-1])
	default: // before the first key frame of the first loop: wait for it
		return int64(c.keyStarts[0])
	}
}

// firstOfTrack is the first absolute index at or after n holding a packet of
// track; false when a VOD clip (live: false) has none left.
func (c *Clip) firstOfTrack(n int64, track int, live bool) (int64, bool) {
	total := int64(len(c.Packets))
	limit := total
	if live {
		limit = n + total
	}
	for m := n; m < limit; m++ {
		if int(c.Packets[m%total].Track) == track {
			return m, true
		}
	}
	return 0, false
}
