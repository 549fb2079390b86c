// Package fill copies streams into a node's store: one fill per key at a
// time, from the first upstream that answers, resuming from the last
// verified segment when an upstream stops part-way.
//
// It owns the registry of fills in progress (Fills), the single flight that
// makes many concurrent misses of one key one fill (with the store checked
// again inside it), the caps on new fills (in all, and per client address:
// ErrTooManyFills, ErrTooManyFillsForClient), the readers each fill counts, the linger that keeps a
// live upstream open for a moment after its last reader left, and the run
// loop: for each source in order (the stream's designated filler, asked
// over the filler protocol and tailed, unless this node is the filler;
// then the mesh's providers, nearest first; then the origin), open an
// upstream, make sure the recording's writer exists, run the upstream into
// it, and on failure move on (a filler that fails is left out and the rule
// picks the next closest member, this node included). An Upstream is a peer
// (mesh.PeerFill) or the origin (rtspedge.OriginSession, reopened with
// backoff while a live origin is lost); it closes its session when its Run
// ends. The origin source holds a slot of the origin's max_sessions Budget
// for as long as its upstream is open. A VOD fill that nobody watches (a
// prefetch's hold is no player: Request.Prefetch; a fill that asks its
// designated filler tells it whether anybody watches, and again when that
// changes, and the filler's hold for an unwatched one is a prefetch's:
// Recording.SetPrefetch) pulls ranges at once (rtspedge.PullRanges, up to
// Request.RangeParallelism sessions, each at the Speed the origin granted
// the first, or at real time), each extra session holding a free slot of
// the Budget, none opened when none is free. A live origin upstream in a
// mesh hands the recording over to the stream's designated filler when
// this node is not it any more (a healed partition: converge.go) and
// closes its session.
//
// Freshness (fresh.go, DESIGN.md §10): Open takes the origin's Policy. A
// stored recording that is stale is revalidated with the origin first (one
// DESCRIBE: If-Modified-Since, else the description compared); unchanged,
// it is served and fresh again; changed, a new recording replaces it once
// its players are gone (they are relayed the new one meanwhile); the origin
// down, it is served stale with a Warning when the policy allows. A peer's
// VOD copy is adopted only if fresh by the policy, or revalidated the same
// way. only-if-cached fills from peers only.
//
// It does not own where a request path maps to (node), the recordings
// themselves (store), the fill protocol (mesh), the RTSP client (rtspedge),
// or metrics and the admin API: those read a Snapshot and get Hooks.
package fill
