// Package node is the composition root of an rtspmesh node: configuration,
// the resolve order (local recording, a filling recording, a peer, the
// origin), the registry of fills in progress, and the admin API.
package node
