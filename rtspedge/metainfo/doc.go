// Package metainfo implements x-RTP-Meta-Info, the per-packet meta
// information of QuickTime/Darwin Streaming Server that a caching proxy asks an
// origin for, and derives the same fields from plain RTP payloads when the
// origin does not send them.
//
// # Negotiation
//
// On SETUP the proxy sends `x-RTP-Meta-Info: tt;ft;pn;sq;md`: two-letter field
// names separated by ';', no spaces. The origin answers with the subset it will
// send, optionally mapping fields to compressed ids (`tt=0;ft=1;pn;md`). No
// echo means plain RTP. ParseHeader and Fields.String handle that header;
// Fields.Intersect picks what an origin supports.
//
// # Packets
//
// A meta-info packet keeps the 12-byte RTP header; its payload is a sequence
// of fields, each in one of two forms:
//
//	standard:   0 | name (15 bits: two 7-bit ASCII chars, i.e. the two bytes 't','t') | length (16 bits) | body
//	compressed: 1 | id (7 bits)                                                      | length (8 bits)  | body
//
// `md` (the original RTP payload) is never compressed and is always last.
// Bodies are big-endian: tt u64 (milliseconds from presentation start, when the
// origin sends the packet), ft u16 (0 unknown, 1 key, 2 B, 3 P), pn u64 (packet
// number from stream start, survives seeks), sq u16 (RTP sequence number), pp
// u64 (byte offset in the stored media). Encode writes them, Decode reads them
// and never panics on hostile input.
//
// # Derivation
//
// FrameTypeH264, FrameTypeH265 and FrameTypeMJPEG derive ft from an RTP
// payload and say whether the packet starts a key frame access unit.
//
// The package knows nothing about RTSP sessions or storage.
package metainfo
