// Package store keeps recordings in an embedded Badger database.
//
// A recording is one stream's manifest plus its packet log cut into segments
// (DESIGN.md §3). The package owns the on-disk format, sealing, readers that
// tail a filling recording, raw segment access for peers, crash recovery,
// quota and eviction. It speaks bytes and its own types: it imports neither
// gortsplib nor libp2p, and knows nothing of RTSP sessions or peers.
//
// Writing. A Writer (Store.Create, Store.Resume) appends packets to an open
// segment held in memory and seals it at Options.SegmentBytes or
// Options.SegmentSpan of media. A sealed segment is written once, in one
// Badger transaction with its segment info and the recording's header; the
// header is O(1) in the number of segments. Commits are pipelined: the writer
// fills the next segment while Badger writes the previous one. Segments from
// peers (Writer.AppendSegment) are verified (hash, then decoding, then index)
// before anything is stored.
//
// Relayed packets (relayed.go). A node tailing a peer's on-demand fill
// appends the peer's open segment packet by packet (Writer.AppendRelayed):
// readers see them at once, the writer never seals them itself, and they
// become a segment only when the seal their signer made names exactly their
// bytes (Writer.SealRelayed); a whole segment of that index replaces them,
// KeepUnsealed keeps a prefix of them for a new source, and Finish drops
// them. An own packet appended after them (Writer.Append) makes them the
// writer's, sealed and signed with its own.
//
// Reading. A Reader is positioned by a binary search over segment infos and a
// scan of one segment; it reads a sealed segment decoded when the writer (its
// commit in flight) or the segment cache holds it, else by chunks of 8 KiB
// of records copied from the value-log file, 16 KiB at a time (chunk.go):
// players at different places of a long recording hold a read each, not a
// segment. A segment
// that several readers are in is loaded decoded into the store-wide cache
// (concurrent misses make one read) and shared; a reader much faster than
// real time reads whole segments of its own. Every byte read from disk is
// checked first (damage.go; chunk CRCs kept from the segment's whole check).
// Then the open segment, then the reader blocks until the writer notifies (a
// channel closed and replaced per change); TryNext returns ErrWouldBlock
// there instead.
//
// Provenance and progress (provenance.go). The manifest says where a
// recording comes from (Source: SourceOrigin or a peer id; Via: a live
// relay's chain) and whether a live fill is between sources; NextSegment is
// where a resumed fill goes on. A live writer tracks each track's last
// packet (Writer.TrackTail): the one record of where a live recording
// stopped, which a new source continues from.
//
// Layout and encodings: manifest.go (Badger keys, header, segment info) and
// segment.go (segment bytes). Crash safety: every seal is atomic; Open turns a
// recording left `filling` or `live` into `partial`; deletions leave a
// tombstone until their keys are gone. Quota: Options.MaxBytes over encoded
// segment bytes, least recently used first, never a recording with a writer,
// readers or a pin; eviction and value-log GC run on the Store's goroutine.
// A segment is refused (ErrNoSpace) when the quota is full of recordings that
// cannot be evicted: recordings being filled count.
//
// Resident memory (resident_linux.go): Badger memory-maps the value log and
// reads and writes values through the mapping; pages touched stay in the
// process's RSS. The store reads segment bytes from the file instead (pread)
// and hands the pages Badger touched (a seal, an entry's header) back with
// madvise, so the value log lives in the page cache, not in the RSS. Its
// goroutine also starts the kernel's writeback of stored segments every
// 4 MiB, and has the value log's next 2 MiB of pages faulted in ahead of
// Badger's writes (writeback_linux.go): Badger msyncs a whole value-log
// file when it rotates it, and its first write to a page waited for the
// kernel to zero it, both on Badger's one write goroutine, which every
// commit waits for.
//
// Free space (space.go): Badger memory-maps its files, so a full filesystem
// would be SIGBUS. Every segment commit checks statfs against
// Options.MinFree and stops storing below it (Storing, Space); other writes
// need Badger's own reserve; a store opened with less than that is read-only
// until space comes back.
//
// A manifest also keeps what rtspedge learnt of the stream for it: why it is
// live or on demand (Manifest.ClassReason) and each live track's RTP↔NTP
// mapping from the origin's sender reports (Track.Clock, Writer.SetClock,
// Reader.Clock), which the store keeps and never interprets.
//
// Not here: what a key means (node), when to fill or announce (node/fill, mesh),
// RTP parsing (rtspedge).
package store
