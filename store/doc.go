// Package store keeps recordings in an embedded Badger database.
//
// A recording is one stream's manifest plus its packet log cut into segments
// (DESIGN.md §3). The package owns the on-disk format, sealing, readers that
// tail a filling recording, raw segment access for peers, crash recovery,
// quota and eviction. It speaks bytes and its own types: it imports neither
// gortsplib nor libp2p, and knows nothing of RTSP sessions or peers.
package store
