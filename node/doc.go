// Package node is the composition root of an rtspmesh node: configuration,
// the resolve order (local recording, a filling recording, a peer, the
// origin), the registry of fills in progress, the bounds on what players
// can make it fetch (fills.*: request rates per connection and address,
// fills in all and per client; bounds.go), and the admin API.
package node
