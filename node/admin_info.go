package node

import (
	"net/http"
	"runtime/debug"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtspmesh/rtspmesh/store"
)

// NodeStatus is GET /api/v1/node.
type NodeStatus struct {
	PeerID     string   `json:"peer_id"` // "" without a mesh
	MeshAddrs  []string `json:"mesh_addrs"`
	Version    string   `json:"version"`
	Started    string   `json:"started"`
	Uptime     float64  `json:"uptime_seconds"`
	RTSPAddr   string   `json:"rtsp_addr"`
	StoreBytes int64    `json:"store_bytes"`
	StoreQuota int64    `json:"store_quota_bytes"` // 0: no quota
	Recordings int      `json:"recordings"`
	Players    int      `json:"players"`
	Fills      int      `json:"fills"`
	Peers      int      `json:"peers"`
	Origins    []string `json:"origins"` // configured origin names
	// Counters since start, for the dashboard's hit ratio and WAN savings.
	Requests        map[Served]uint64 `json:"requests"`
	Hits            uint64            `json:"hits"`
	Misses          uint64            `json:"misses"`
	FillBytesPeer   uint64            `json:"fill_bytes_peer"`   // stored from peers
	FillBytesOrigin uint64            `json:"fill_bytes_origin"` // stored from origins: what crossed the WAN
	PlayerBytes     uint64            `json:"player_sent_bytes"` // RTP bytes sent to players
	// WANSaved is the part of PlayerBytes sent in sessions that did not
	// start a fill from an origin (docs/api.md, "WAN bytes saved").
	WANSaved uint64        `json:"wan_saved_bytes"`
	Storage  StorageStatus `json:"storage"`
	// OpenMesh: the mesh listens beyond this host with no psk_file and no
	// allow_peers, on purpose (mesh.open); anyone may join and copy.
	OpenMesh bool `json:"open_mesh"`
}

// StorageStatus says whether the node stores what it fills (cache.min_free,
// cache.max_bytes).
type StorageStatus struct {
	Storing   bool   `json:"storing"`    // false: fills are relayed to players without storing
	ReadOnly  bool   `json:"read_only"`  // started with too little space to write: serving what it has
	QuotaFull bool   `json:"quota_full"` // cache.max_bytes is taken by recordings that cannot be evicted
	Free      int64  `json:"free_bytes"` // free on data_dir's filesystem at the last check
	MinFree   int64  `json:"min_free_bytes"`
	Since     string `json:"since"`            // when storing last stopped or resumed
	Refused   int64  `json:"segments_refused"` // segments refused for lack of disk space
}

func storageStatus(sp store.SpaceState) StorageStatus {
	return StorageStatus{Storing: sp.Storing, ReadOnly: sp.ReadOnly, QuotaFull: sp.QuotaFull,
		Free: sp.Free, MinFree: sp.MinFree, Since: sp.Since.UTC().Format(time.RFC3339), Refused: sp.Refused}
}

func (a *adminServer) nodeInfo(w http.ResponseWriter, r *http.Request) {
	n := a.n
	used, quota := n.store.Usage()
	infos, _ := n.store.List()
	fills := len(n.fills.Snapshot())
	st := NodeStatus{
		PeerID: n.PeerID(), MeshAddrs: n.MeshAddrs(), Version: Version(),
		Started: a.started.UTC().Format(time.RFC3339), Uptime: time.Since(a.started).Seconds(),
		RTSPAddr: n.RTSPAddr().String(), StoreBytes: used, StoreQuota: quota, Recordings: len(infos),
		Players: n.edge.Stats().Sessions, Fills: fills, Peers: len(a.peers()),
		Requests: make(map[Served]uint64), Storage: storageStatus(n.store.Space()),
	}
	st.OpenMesh, _ = n.cfg.Mesh.Posture()
	if st.MeshAddrs == nil {
		st.MeshAddrs = []string{}
	}
	for _, o := range n.cfg.Origins {
		st.Origins = append(st.Origins, o.Name)
	}
	c := &n.metrics.counts
	for i, s := range servedLabels {
		st.Requests[s] = c.requests[i].Load()
	}
	st.Hits = c.hits.Load()
	st.Misses = c.misses.Load()
	st.FillBytesPeer = c.fillBytesPeer.Load()
	st.FillBytesOrigin = c.fillBytesOrigin.Load()
	st.WANSaved = c.wanSaved.Load() // first: never more than PlayerBytes
	st.PlayerBytes = c.playerBytes.Load()
	writeJSON(w, http.StatusOK, st)
}

// PeerStatus is one entry of GET /api/v1/peers.
type PeerStatus struct {
	ID      string   `json:"id"`
	Addrs   []string `json:"addrs"`
	RTT     float64  `json:"rtt_seconds"` // 0 when not measured yet
	Streams []string `json:"streams"`     // keys it provided in this node's lookups
	// What it holds, from its answer to the catalogue protocol
	// (docs/api.md); nil when it has not answered (CatalogueError says why).
	Holds          []PeerStream `json:"holds"`
	HoldsTruncated bool         `json:"holds_truncated,omitempty"`
	CatalogueError string       `json:"catalogue_error,omitempty"`
}

func (a *adminServer) peers() []PeerStatus {
	if a.n.mesh == nil {
		return []PeerStatus{}
	}
	ps := a.n.mesh.Peers()
	out := make([]PeerStatus, 0, len(ps))
	a.mu.Lock()
	for _, p := range ps {
		s := PeerStatus{ID: p.ID, Addrs: p.Addrs, RTT: p.RTT.Seconds(), Streams: []string{}}
		for k := range a.providers[p.ID] {
			s.Streams = append(s.Streams, k)
		}
		sort.Strings(s.Streams)
		if s.Addrs == nil {
			s.Addrs = []string{}
		}
		out = append(out, s)
	}
	a.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (a *adminServer) listPeers(w http.ResponseWriter, r *http.Request) {
	ps := a.peers()
	a.catalogues.fill(r.Context(), a, ps)
	writeJSON(w, http.StatusOK, ps)
}

// lookedUp remembers which peers provided key in a DHT lookup.
func (a *adminServer) lookedUp(key string, peerIDs []string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range peerIDs {
		if a.providers[id] == nil {
			a.providers[id] = make(map[string]bool)
		}
		a.providers[id][key] = true
	}
}

// meshCollectors read the mesh's counters at scrape time.
func meshCollectors(n *Node) []prometheus.Collector {
	if n.mesh == nil {
		return nil
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rtspmesh_peers_connected", Help: "Mesh peers connected now.",
		}, func() float64 { return float64(len(n.mesh.Peers())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rtspmesh_mesh_fill_received_bytes_total", Help: "Fill-protocol bytes received from peers (segments).",
		}, func() float64 { return float64(n.mesh.Stats().FillBytesIn) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rtspmesh_mesh_fill_sent_bytes_total", Help: "Fill-protocol bytes sent to peers (segments).",
		}, func() float64 { return float64(n.mesh.Stats().FillBytesOut) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rtspmesh_mesh_fills_serving", Help: "Fills this node is serving to peers now.",
		}, func() float64 { return float64(n.mesh.Stats().Serving) }),
	}
}

// Version is the module version of this build plus its VCS revision.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
