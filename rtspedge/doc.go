// Package rtspedge speaks RTSP for a node: the server players connect to,
// the client that pulls a stream from an origin into the store, and replay
// pacing from stored packets. Its subpackages hold the x-RTP-Meta-Info codec
// (metainfo) and the built-in test origin (origin).
//
// Origin side: OpenOrigin sends DESCRIBE and SETUP (TCP-interleaved, asking
// for x-RTP-Meta-Info), OriginSession.Run sends PLAY and appends every packet
// to a PacketWriter (a store.Writer) with its tt/ft/pn: the origin's when it
// sends meta-info, derived otherwise (tt from RTP timestamps through RTP-Info,
// ft from the payload, pn by counting). A writer that already holds packets
// is resumed from its last one without duplicates.
//
// Player side: Server answers DESCRIBE with the stored SDP (control URLs
// rewritten, a=range for VOD), SETUP over TCP or UDP, and PLAY/PAUSE with a
// per-session replay goroutine that sends each packet at
// play start + (tt - tt at the start point), rewriting sequence numbers and
// timestamps so that they stay continuous across seeks. A player whose
// queue fills is dropped alone. Errors of Recordings become RTSP status codes
// here and nowhere else.
//
// It does not decide where a stream comes from (that is package node) and it
// never imports package mesh or libp2p.
package rtspedge
