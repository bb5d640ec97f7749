package api

import "time"

// Hive states in the queen's registry.
const (
	HiveStateOnline = "online"
	HiveStateStale  = "stale"
)

// Hive is a hive's record, as the queen's queries return it.
type Hive struct {
	ID    string `json:"id"`
	URL   string `json:"url"`
	State string `json:"state"`
	// SessionID is shown to operators only: whoever knows it could try
	// to speak for the hive.
	SessionID   string    `json:"session_id,omitempty"`
	Seq         uint64    `json:"seq"`
	Version     string    `json:"version"`
	GPUBackend  string    `json:"gpu_backend"`
	IntervalMS  int64     `json:"interval_ms"`
	LastSeen    time.Time `json:"last_seen"`
	OnlineSince time.Time `json:"online_since"`
	Node        Node      `json:"node"`
	Workers     []Worker  `json:"workers"`
}

// FleetWorker is a worker with its hive, as the queen lists it. Stale is
// true while its hive is stale: it is listed but never scheduled.
type FleetWorker struct {
	Worker
	HiveID  string `json:"hive_id"`
	HiveURL string `json:"hive_url"`
	Stale   bool   `json:"stale"`
	Idle    bool   `json:"idle"`
}

// Decision is a scheduling answer: an idle worker that already serves the
// model, or else a hive and GPU with room to start one.
type Decision struct {
	// Kind is "worker" or "gpu".
	Kind   string       `json:"kind"`
	Worker *FleetWorker `json:"worker,omitempty"`
	HiveID string       `json:"hive_id"`
	// HiveURL is where to ask the hive to spawn or route to.
	HiveURL       string  `json:"hive_url"`
	GPU           *GPU    `json:"gpu,omitempty"`
	FreeVRAMBytes *uint64 `json:"free_vram_bytes,omitempty"`
	Reason        string  `json:"reason"`
}

// EventQueen is the type of the queen's periodic summary event.
const EventQueen = "queen"

// QueenSummary is the data of the "queen" event and the counters of the
// queen's /v1/info.
type QueenSummary struct {
	Version    string  `json:"version"`
	UptimeS    float64 `json:"uptime_s"`
	Hives      int     `json:"hives"`
	Online     int     `json:"online"`
	Stale      int     `json:"stale"`
	Workers    int     `json:"workers"`
	Heartbeats uint64  `json:"heartbeats"`
	Ignored    uint64  `json:"heartbeats_ignored"`
	Rejected   uint64  `json:"heartbeats_rejected"`
	Clients    int64   `json:"sse_clients"`
	Coalesced  uint64  `json:"sse_coalesced"`
	Evicted    uint64  `json:"sse_evicted"`
}

// QueenInfo is the queen's GET /v1/info.
type QueenInfo struct {
	QueenSummary
	Listen       string  `json:"listen"`
	HiveTTLS     float64 `json:"hive_ttl_s"`
	AuthRequired bool    `json:"auth_required"`
	TLS          bool    `json:"tls"`
	MaxHives     int     `json:"max_hives"`
	// Refused counts refused requests and heartbeats, by reason.
	Refused map[string]uint64 `json:"refused"`
}
