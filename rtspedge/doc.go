// Package rtspedge speaks RTSP: the server that players connect to, the
// client that pulls a stream from an origin into the store, replay pacing from
// stored packets, and the built-in test origin.
//
// It does not decide where a stream comes from (that is package node) and it
// never imports package mesh.
package rtspedge
