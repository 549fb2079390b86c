package node

import "time"

// Span returns the stored window of the recording: the tt of its oldest
// packet and of its newest. It implements rtspedge.Recording.
func (r *recording) Span() (first, last time.Duration, err error) {
	return r.st.Span(r.key)
}
