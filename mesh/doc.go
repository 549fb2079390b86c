// Package mesh is the peer-to-peer side of a node: the libp2p host, the
// Kademlia DHT in which nodes provide the streams they hold, and the fill
// protocol that copies a stored recording from one node to another.
//
// It never imports package rtspedge; it reads and writes recordings only
// through package store.
package mesh
