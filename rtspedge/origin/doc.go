// Package origin is the built-in RTSP origin (`rtspmesh origin`): a small
// server for tests, demos and first steps that serves MPEG-TS files (H.264 +
// AAC) as seekable VOD and loops files as live streams, and speaks the origin
// side of x-RTP-Meta-Info so that a caching proxy's meta-info path is tested.
//
// Each file is cut into RTP packets once (Packetize). Every session gets its
// own gortsplib ServerStream and one pacing goroutine that sends the packets at
// their transmit time (tt): VOD from the key frame at or before the PLAY
// Range, live from the latest key frame of a clock shared by every session of
// that stream (sequence numbers and timestamps continue across loops). A
// SETUP with `x-RTP-Meta-Info` gets meta-info packets (RTP header kept,
// payload = tt, ft (video), pn, sq, md as requested, compressed ids as mapped)
// and the header echoed with what is sent. Every track gets RTCP sender
// reports (a compound SR + SDES CNAME with its first packet and about every
// 5 s), whose RTP↔NTP line is the clip's presentation time from when it
// was (live: the stream's epoch, shared by every session) or would have
// been at 0; the end of a VOD play is a compound SR + SDES + BYE on every
// track, 200 ms of the play's time after the last packet left (as a node's
// server does: GStreamer's rtspsrc may never end at a BYE that comes while
// its jitter buffer still holds a packet).
//
// Also: `Speed` (VOD, up to Config.MaxSpeed, echoed), `Cache-Control` per path,
// `Last-Modified` on DESCRIBE (304 for a matching `If-Modified-Since`),
// DESCRIBE/PLAY counts per path, and 501 for `x-Packet-Range`. A PLAY without
// Range resumes where PAUSE stopped, with no packet lost between (the PAUSE
// answer waits until the session's queue has written what was handed to
// it, as a node's server does over UDP); sequence numbers and RTP timestamps are
// the clip's own, so they jump on a seek and RTP-Info says where.
//
// It does not cache, record or relay anything; that is the rest of rtspedge.
package origin
