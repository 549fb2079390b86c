package node

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rtspmesh/rtspmesh/store"
)

// metrics are the node's Prometheus collectors, in a registry of their own
// (never the global one: tests run several nodes in one process). Counters
// the node changes itself live here; what other components already count
// (RTSP sessions, store use, mesh traffic) is read at scrape time.
//
// Every method is safe on a nil *metrics, so a Node built without them
// (tests of one function) still runs.
type metrics struct {
	reg    *prometheus.Registry
	counts counts // what the admin API shows: never read back from Prometheus

	requests      *prometheus.CounterVec // by served: local, tail, peer, origin
	requestErrors prometheus.Counter
	hits          prometheus.Counter            // local + tail
	misses        *prometheus.CounterVec        // by source: peer, origin
	prefetches    *prometheus.CounterVec        // by served
	fillBytes     *prometheus.CounterVec        // by source: peer, origin
	playerBytes   *prometheus.CounterVec        // by served: local, tail, peer, origin
	playerBytesBy map[Served]prometheus.Counter // playerBytes' children, looked up once
	wanSaved      prometheus.Counter            // playerBytes of local, tail and peer
	fills         *prometheus.CounterVec        // by result: complete, partial, failed
	fillDuration  prometheus.Histogram
	evictions     prometheus.Counter
	dhtLookups    *prometheus.CounterVec // by result: found, none, error
	dhtLatency    prometheus.Histogram
	refusals      *prometheus.CounterVec // by limit (bounds.go)
}

// Served labels as they appear in metrics.
var servedLabels = [...]Served{ServedLocal, ServedTail, ServedPeer, ServedOrigin}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg:           prometheus.NewRegistry(),
		playerBytesBy: make(map[Served]prometheus.Counter),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtspmesh_requests_total",
			Help: "Player requests resolved, by where the stream was served from (local, tail, peer, origin).",
		}, []string{"served"}),
		requestErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtspmesh_request_errors_total",
			Help: "Player requests that could not be resolved (unknown origin, bad path, origin unavailable).",
		}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtspmesh_cache_hits_total",
			Help: "Player requests served from this node's store (complete recording or a fill in progress).",
		}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtspmesh_cache_misses_total",
			Help: "Player requests that started a new fill, by its first source (peer, origin).",
		}, []string{"source"}),
		prefetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtspmesh_prefetches_total",
			Help: "Prefetches asked through the admin API, by where the stream came from.",
		}, []string{"served"}),
		fillBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtspmesh_fill_bytes_total",
			Help: "RTP bytes stored by fills, by source (peer, origin). source=\"origin\" is what crossed the WAN.",
		}, []string{"source"}),
		playerBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtspmesh_player_served_bytes_total",
			Help: "RTP bytes sent to players, by where their session was served from (local, tail, peer, origin).",
		}, []string{"served"}),
		wanSaved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtspmesh_wan_saved_bytes_total",
			Help: "RTP bytes sent to players whose session did not start a fill from an origin (served local, tail or peer): bytes that did not cross the WAN for them (docs/api.md).",
		}),
		fills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtspmesh_fills_total",
			Help: "Fills ended, by result (complete, partial, failed).",
		}, []string{"result"}),
		fillDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rtspmesh_fill_duration_seconds",
			Help:    "How long fills ran, from start to the end of the recording or the failure.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14), // 0.1 s .. ~27 min
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtspmesh_evictions_total",
			Help: "Recordings removed from the store, by quota or by the admin API.",
		}),
		dhtLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtspmesh_dht_lookups_total",
			Help: "DHT provider lookups made by fills, by result (found, none, error).",
		}, []string{"result"}),
		dhtLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rtspmesh_dht_lookup_duration_seconds",
			Help:    "How long DHT provider lookups took (bounded by mesh.find_timeout).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms .. ~8 s
		}),
	}
	for _, s := range servedLabels {
		m.requests.WithLabelValues(string(s))
		m.prefetches.WithLabelValues(string(s))
		m.playerBytesBy[s] = m.playerBytes.WithLabelValues(string(s))
	}
	for _, s := range []string{"peer", store.SourceOrigin} {
		m.misses.WithLabelValues(s)
		m.fillBytes.WithLabelValues(s)
	}
	for _, r := range []string{"complete", "partial", "failed"} {
		m.fills.WithLabelValues(r)
	}
	for _, r := range []string{"found", "none", "error"} {
		m.dhtLookups.WithLabelValues(r)
	}
	m.reg.MustRegister(m.requests, m.requestErrors, m.hits, m.misses, m.prefetches, m.fillBytes, m.playerBytes, m.wanSaved,
		m.fills, m.fillDuration, m.evictions, m.dhtLookups, m.dhtLatency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(scrapeTime(n)...)
	m.reg.MustRegister(freshCollectors(n)...)
	m.refusals = newRefusals(m.reg)
	return m
}

// scrapeTime are the collectors read from other components when scraped.
func scrapeTime(n *Node) []prometheus.Collector {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{
		gauge("rtspmesh_players", "Player sessions open now.", func() float64 {
			return float64(n.edge.Stats().Sessions)
		}),
		gauge("rtspmesh_players_playing", "Player sessions replaying now.", func() float64 {
			return float64(n.edge.Stats().Playing)
		}),
		counter("rtspmesh_player_packets_sent_total", "RTP packets sent to players.", func() float64 {
			return float64(n.edge.Stats().PacketsSent)
		}),
		counter("rtspmesh_player_sent_bytes_total", "RTP bytes sent to players.", func() float64 {
			return float64(n.edge.Stats().BytesSent)
		}),
		counter("rtspmesh_player_rtcp_sent_total", "RTCP compounds sent to players (sender reports, the end's SR+BYE).", func() float64 {
			return float64(n.edge.Stats().ReportsSent)
		}),
		counter("rtspmesh_player_rtcp_received_total", "RTCP packets received from players (receiver reports, SDES, BYE).", func() float64 {
			return float64(n.edge.Stats().RTCPReceived)
		}),
		counter("rtspmesh_slow_players_dropped_total", "Players closed because they took nothing for 2 s (a TCP connection, or a UDP player's queue).", func() float64 {
			return float64(n.edge.Stats().SlowDropped)
		}),
		counter("rtspmesh_udp_packets_dropped_total", "RTP packets to UDP players dropped at a full queue (this node short of CPU or of its link); their players play on.", func() float64 {
			return float64(n.edge.Stats().UDPDropped)
		}),
		counter("rtspmesh_live_plays_retrailed_total", "Live TCP plays moved back to trail the stored edge after a lagging source brought them up to it.", func() float64 {
			return float64(n.edge.Stats().LiveRetrails)
		}),
		gauge("rtspmesh_rtsp_connections", "RTSP connections open now.", func() float64 {
			return float64(n.edge.Stats().Conns)
		}),
		counter("rtspmesh_rtsp_connections_refused_total", "RTSP connections refused by rtsp.max_connections or rtsp.max_connections_per_address.", func() float64 {
			return float64(n.edge.Stats().ConnsRefused)
		}),
		counter("rtspmesh_rtsp_connections_timed_out_total", "RTSP connections closed for a request not complete within rtsp.request_timeout, or idle outside PLAY for rtsp.idle_timeout.", func() float64 {
			return float64(n.edge.Stats().ConnsTimedOut)
		}),
		counter("rtspmesh_rtsp_sessions_refused_total", "Player sessions refused (453) by rtsp.max_sessions or rtsp.max_sessions_per_address.", func() float64 {
			return float64(n.edge.Stats().SessionsRefused)
		}),
		counter("rtspmesh_rtsp_auth_failures_total", "Player requests refused (401) for wrong credentials (rtsp.auth).", func() float64 {
			return float64(n.edge.Stats().AuthFailed)
		}),
		gauge("rtspmesh_fills_active", "Fills running now.", func() float64 {
			return float64(len(n.fills.Snapshot()))
		}),
		gauge("rtspmesh_store_bytes", "Bytes the store holds (encoded segments).", func() float64 {
			used, _ := n.store.Usage()
			return float64(used)
		}),
		counter("rtspmesh_store_written_bytes_total", "Encoded segment bytes the store has written since the node started (before Badger's overhead), dropped live-window segments included.", func() float64 {
			return float64(n.store.Written())
		}),
		gauge("rtspmesh_store_quota_bytes", "The store's quota (cache.max_bytes); 0 means none.", func() float64 {
			_, max := n.store.Usage()
			return float64(max)
		}),
		gauge("rtspmesh_store_storing", "1 while the store stores fills; 0 while it relays without storing (below cache.min_free free, or the quota full of recordings that cannot be evicted).", func() float64 {
			if n.store.Storing() {
				return 1
			}
			return 0
		}),
		gauge("rtspmesh_store_free_bytes", "Free space on data_dir's filesystem at the last check.", func() float64 {
			return float64(n.store.Space().Free)
		}),
		counter("rtspmesh_store_segments_refused_total", "Segments not stored for lack of disk space (cache.min_free).", func() float64 {
			return float64(n.store.Space().Refused)
		}),
		gauge("rtspmesh_store_recordings", "Recordings in the store.", func() float64 {
			infos, _ := n.store.List()
			return float64(len(infos))
		}),
		gauge("rtspmesh_uptime_seconds", "Seconds since the node was created.", func() float64 {
			return time.Since(n.admin.started).Seconds()
		}),
	}
	return append(cs, meshCollectors(n)...)
}

// counts are the node's counters since start as the admin API shows them.
type counts struct {
	requests        [len(servedLabels)]atomic.Uint64 // by servedLabels
	hits, misses    atomic.Uint64
	fillBytesPeer   atomic.Uint64
	fillBytesOrigin atomic.Uint64
	playerBytes     atomic.Uint64 // RTP bytes sent to players
	wanSaved        atomic.Uint64 // the part of playerBytes not served from an origin fill
}

func (m *metrics) request(s Served) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(string(s)).Inc()
	for i, l := range servedLabels {
		if l == s {
			m.counts.requests[i].Add(1)
		}
	}
	switch s {
	case ServedLocal, ServedTail:
		m.hits.Inc()
		m.counts.hits.Add(1)
	default:
		m.misses.WithLabelValues(string(s)).Inc()
		m.counts.misses.Add(1)
	}
}

// delivered counts bytes sent to a player whose session was served from s.
func (m *metrics) delivered(s Served, bytes uint64) {
	if m == nil || bytes == 0 {
		return
	}
	if c := m.playerBytesBy[s]; c != nil {
		c.Add(float64(bytes))
	}
	m.counts.playerBytes.Add(bytes) // before wanSaved: never less than it
	if s != ServedOrigin {
		m.wanSaved.Add(float64(bytes))
		m.counts.wanSaved.Add(bytes)
	}
}

func (m *metrics) requestFailed() {
	if m != nil {
		m.requestErrors.Inc()
	}
}

func (m *metrics) prefetched(s Served) {
	if m != nil {
		m.prefetches.WithLabelValues(string(s)).Inc()
	}
}

// filled counts bytes a fill stored from source ("peer" or "origin").
func (m *metrics) filled(source string, bytes uint64) {
	if m == nil {
		return
	}
	m.fillBytes.WithLabelValues(source).Add(float64(bytes))
	if source == store.SourceOrigin {
		m.counts.fillBytesOrigin.Add(bytes)
	} else {
		m.counts.fillBytesPeer.Add(bytes)
	}
}

// fillEnded counts a fill's result: complete, partial or failed.
func (m *metrics) fillEnded(result string, took time.Duration) {
	if m == nil {
		return
	}
	m.fills.WithLabelValues(result).Inc()
	m.fillDuration.Observe(took.Seconds())
}

func (m *metrics) evicted() {
	if m != nil {
		m.evictions.Inc()
	}
}

// dhtLookup records one FindProviders call.
func (m *metrics) dhtLookup(took time.Duration, found int, err error) {
	if m == nil {
		return
	}
	result := "found"
	switch {
	case err != nil:
		result = "error"
	case found == 0:
		result = "none"
	}
	m.dhtLookups.WithLabelValues(result).Inc()
	m.dhtLatency.Observe(took.Seconds())
}
