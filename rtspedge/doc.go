// Package rtspedge speaks RTSP for a node: the server players connect to,
// the client that pulls a stream from an origin into the store, and replay
// pacing from stored packets. Its subpackages hold the x-RTP-Meta-Info codec
// (metainfo), the built-in test origin (origin), and the lifting of
// gortsplib's one-second hold on a GStreamer player's SETUP that both
// servers use (setuphold).
//
// Origin side: OpenOrigin sends DESCRIBE and SETUP (TCP-interleaved, asking
// for x-RTP-Meta-Info), OriginSession.Run sends PLAY and appends every packet
// to a PacketWriter (a store.Writer) with its tt/ft/pn: the origin's when it
// sends meta-info, derived otherwise (tt from RTP timestamps through RTP-Info,
// ft from the payload, pn by counting). A writer that already holds packets
// is resumed from its last one without duplicates. The session is kept to
// its origin (originpolicy.go): a DESCRIBE redirect is followed only within
// the URL's scheme, host and port (or never), the client dials no other
// address, and Basic credentials never go over plain rtsp:// unless allowed
// (ErrOriginPolicy). Run stores at most MaxBitrate over the SDP's duration
// (live: wall time), and no packet over MaxPlayerPacket (ErrStreamLimit).
// An on-demand stream is asked for OriginRequest.Speed on PLAY (never a
// live one), lowered to what RateLimit allows for the bitrate the SDP
// declares (originspeed.go); tt stays the media's own, so replay paces at
// real time whatever speed the fill ran at. WrapConn lets the caller
// throttle the connection (the node's rate_limit).
//
// Ranges at once (originranges.go): PullRanges plays an on-demand stream as
// Run does and, while the caller says nobody watches, pulls the rest as
// several ranges side by side, each a session of its own (RangePull.Open)
// that PLAYs with Range npt=a- at the Speed the origin granted the first
// (real time when it granted none), as many as keep the sum within
// RateLimit. Each range is cut where the next one's packets
// begin (the first packet of each track from which 16 packets are alike in
// both sessions), the next one's sequence numbers, timestamps and SSRC are
// rewritten to continue it, and tt derived from its timestamps: the writer
// gets per track what a single pull stores. Later ranges wait in memory
// (RangePull.MaxBuffer); ranges that cannot be joined are given up for one
// session resuming from what was stored.
//
// Classification (on demand or live) is one function, classify: a finite
// end in the description's a=range (session level, else the longest media
// level) or in the PLAY answer's Range means on demand, an open end or no
// range means live, and the PLAY answer's end, when it has one, is the
// duration. It reads npt ranges itself (gortsplib's cannot read "now", as
// in gst-rtsp-server's npt=now-20). DESCRIBE classifies first; Run's PLAY
// answer may then turn a live stream on demand before its first packet,
// updating the writer (Manifest.Live, State, Duration) and calling
// OriginRequest.OnClassify. Manifest.ClassReason keeps the reason.
//
// Player side: Server answers DESCRIBE with the stored SDP (control URLs
// rewritten, a=range for VOD), SETUP over TCP or UDP, and PLAY/PAUSE with a
// per-session replay goroutine that sends each packet at
// play start + (tt - tt at the start point), rewriting sequence numbers and
// timestamps so that they stay continuous across seeks. Over TCP the replay
// writes the session's RTP and RTCP itself, as interleaved frames gathered a
// batch at a time in a pooled buffer, on the connection gortsplib keeps for
// RTSP (batchconn.go; the channels are those of gortsplib's SETUP answers);
// over UDP packets go through gortsplib's session queue, which gortsplib
// discards on PAUSE, so a PAUSE is answered once the queue has written what
// the replay handed it (a resumed play has no hole). A player whose
// connection takes nothing for 2–3 s, or whose UDP queue fills, is dropped
// alone. Errors of Recordings become RTSP status codes
// here and nowhere else (a LimitError: 503 with its reason phrase).
// Recordings.Open's context carries the Client (address and connection)
// that asked, so the resolver can bound requests per client, and whether
// the player asked Cache-Control: only-if-cached (OnlyIfCached;
// ErrNotCached is 504). A Recording that is a Warner (served stale) has its
// Warning on the DESCRIBE answer. Revalidate (revalidate.go) is one
// DESCRIBE with If-Modified-Since under the origin policy; SameDescription
// compares two descriptions without their per-session lines.
//
// Abuse (connguard.go, auth.go): every connection keeps a read deadline of
// its own (a request completes within Limits.RequestTimeout of its first
// byte; outside PLAY a connection idles at most Limits.IdleTimeout);
// connections and sessions are capped in all and per IP address (503 at
// accept, 453 at SETUP). With ServerConfig.Auth, DESCRIBE and SETUP need
// RTSP Digest credentials checked against an HA1 (Basic only when enabled).
//
// RTCP to players (RFC 3550; reports.go): gortsplib reports only for
// ServerStream writes, so the replay sends its own. Each set-up track gets a
// compound SR + SDES CNAME (one CNAME per session) with its first packet and
// then every 5 s randomised into [2.5, 7.5] s, over TCP and UDP, while the
// replay runs; the end of a stream is SR + SDES + BYE on every track, sent
// 200 ms after the last packet's time, or after it left when it left late
// (a recording still filling fell behind; players stop at the BYE: packets
// still in flight, sent early or over UDP on the RTP socket, would be lost). The
// RTP↔NTP line follows the session timeline (NTP = when session time 0 was
// played + session time), which PAUSE stops and a seek moves on like the
// timestamps, so one line holds for the whole session. A live track whose
// origin sent sender reports reports the origin's NTP instead: Run keeps
// each report's mapping with the recording (store.Writer.SetClock, in the
// timestamps stored, re-based for a spliced session), the mesh relays it,
// and the replay maps the session's timestamp back to the stored one
// (store.Reader.Clock). RTCP from players is counted
// (ServerStats.RTCPReceived), never an error.
//
// Live streams: the store keeps a rolling window of a live recording, and
// a live PLAY's Range is read against it (Recording.Span gives the oldest
// and newest stored tt at the request):
//
//   - no Range, npt=0 (ffmpeg's first PLAY), npt=now- or a Range that
//     cannot be read: the live edge, the latest stored key frame;
//   - npt=T- with T > 0: T after the window start (its oldest packet), at
//     the key frame at or before it; past the newest packet, the live
//     edge. The replay is paced at normal speed from there, so the player
//     stays about that far behind live (time shift);
//   - clock=<UTC>- (RFC 2326 absolute time): the newest packet is now, so
//     the packet of that instant is tt newest - (now - UTC), at the key
//     frame at or before it; before the window, the window's first key
//     frame (not 457: a player asking for "a while ago" gets the oldest we
//     have); in the future, the live edge.
//
// The answer's Range says where the play started in the unit asked for:
// clock=<UTC of that packet>- for clock=, else npt=<tt - window start>-.
// Relative npt positions move with the window: to resume, send no Range.
// With ffmpeg, "-seek_timestamp 1 -ss T" sends npt=T (T after the window
// start); a plain "-ss T" adds the start time it saw first (the live
// edge's npt), so it lands at the live edge.
//
// PAUSE stops a live replay where it is. A PLAY without a Range resumes
// there, as does npt=0 after a PAUSE (gortsplib clients send npt=0- on
// every PLAY) and a Range that points within 50 ms of it; with no gap and
// no repeat. If the window moved past the paused position, the play
// resumes at the live edge, not at the window's oldest key frame, which is
// the next to be dropped. A player the window overtakes while it plays
// (paused long, time-shifted near the window start, or slow) is moved to
// the live edge the same way, logged at Info once per move: the session
// timeline continues (sequence numbers follow on, timestamps go on 100 ms
// after the last packet sent), and the player never gets a hole.
//
// It does not decide where a stream comes from (that is package node) and it
// never imports package mesh or libp2p.
package rtspedge
