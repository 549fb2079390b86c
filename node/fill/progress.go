package fill

import (
	"time"

	"github.com/rtspmesh/rtspmesh/store"
)

// Progress is how far a fill is: what its recording holds, how much of the
// stream's media, and how fast this fill went since it began writing.
type Progress struct {
	Bytes   uint64        // RTP bytes in the recording's sealed segments
	Done    time.Duration // media time of the last packet written
	Total   time.Duration // the stream's duration; 0 for live or unknown
	Started time.Time     // when this fill began writing the recording
	Rate    float64       // bytes per second this fill stored since Started
	Speed   float64       // media seconds per second since Started: 8 is 8x real time
	ETA     time.Duration // until Done reaches Total at Speed; 0 when unknown
}

// progressStart is where a fill began writing its recording.
type progressStart struct {
	w     *store.Writer
	at    time.Time
	bytes uint64
	tt    time.Duration
}

// watch notes w as the recording f writes, once, with what it holds
// already (a resumed partial recording).
func (fs *Fills) watch(f *fill, w *store.Writer) {
	if w == nil {
		return
	}
	tt, _, _ := w.Last()
	bytes := w.Manifest().Bytes
	fs.mu.Lock()
	if f.progress.w == nil {
		f.progress = progressStart{w: w, at: time.Now(), bytes: bytes, tt: tt}
	}
	fs.mu.Unlock()
}

// progress is how far the fill from ps is at now; false before it writes.
func (ps progressStart) progress(now time.Time) (Progress, bool) {
	if ps.w == nil {
		return Progress{}, false
	}
	m := ps.w.Manifest()
	done, _, _ := ps.w.Last()
	p := Progress{Bytes: m.Bytes, Done: done, Started: ps.at}
	if !m.Live {
		p.Total = m.Duration
	}
	if took := now.Sub(ps.at).Seconds(); took > 0 {
		p.Rate = float64(max(m.Bytes, ps.bytes)-ps.bytes) / took
		p.Speed = max(done-ps.tt, 0).Seconds() / took
	}
	if p.Total > done && p.Speed > 0 {
		p.ETA = time.Duration(float64(p.Total-done) / p.Speed)
	}
	return p, true
}

// Progress is how far the fill of key is; false when none runs or it has
// not written yet.
func (fs *Fills) Progress(key string) (Progress, bool) {
	fs.mu.Lock()
	f := fs.m[key]
	var ps progressStart
	if f != nil {
		ps = f.progress
	}
	fs.mu.Unlock()
	return ps.progress(time.Now())
}
