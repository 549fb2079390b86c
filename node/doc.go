// Package node is the composition root of an rtspmesh node. It owns:
//
//   - configuration: Defaults, the YAML file, environment overrides and
//     Validate (config*.go); defaults of the components are theirs;
//   - path mapping: a player's path to a configured origin and a canonical
//     stream key, never an open proxy, the query dropped unless the origin
//     passes it (paths.go);
//   - bounds on what players can make it fetch: requests per second per
//     connection and per address (bounds.go), and the fill registry's caps
//     on fills in all and per client (fills.* in the config);
//   - wiring and lifetime: New opens the store, the in-memory relay store
//     (whose Badger opens at its first use), the mesh host and the RTSP
//     server; Run runs them and the fills and waits for every goroutine
//     (node.go), and with memory_limit auto follows the RTSP sessions with
//     the process's memory limit (memlimit.go); Open is
//     rtspedge.Recordings (resolve.go);
//   - operations: the admin HTTP API, Prometheus metrics and the dashboard
//     (admin*.go, metrics.go, dashboard/). They read the fill registry's
//     Snapshot and the counters the fill Hooks feed, never its lock, and
//     never read values back out of Prometheus.
//
// It does not own the fills themselves (node/fill: registry, single
// flight, linger, the peer and origin upstreams and live reconnect), the
// recordings (store), the fill protocol and peer discovery (mesh), or RTSP
// on either side (rtspedge).
package node
