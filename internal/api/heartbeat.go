package api

import "time"

// Heartbeat is what a hive posts to the queen every interval and at once
// after a spawn, an exit or a kill. It carries the hive's full worker list
// (the queen replaces what it had), each worker's static fields only when
// they are new to the queen (see WorkerReport).
type Heartbeat struct {
	HiveID  string `json:"hive_id"`
	HiveURL string `json:"hive_url"`
	// SessionID is new at every hive start; a new one means a restart.
	SessionID string `json:"session_id"`
	// Seq increases with every heartbeat of a session; the queen ignores
	// one older than the last it applied.
	Seq        uint64         `json:"seq"`
	SentAt     time.Time      `json:"sent_at"`
	IntervalMS int64          `json:"interval_ms"`
	Version    string         `json:"version"`
	GPUBackend string         `json:"gpu_backend"`
	Node       Node           `json:"node"`
	Workers    []WorkerReport `json:"workers"`
}

// Node is the host-level view of a hive.
type Node struct {
	CPUCores      int      `json:"cpu_cores"`
	CPUPct        *float64 `json:"cpu_pct"`
	MemTotalBytes *uint64  `json:"mem_total_bytes"`
	MemUsedBytes  *uint64  `json:"mem_used_bytes"`
	GPUs          []GPU    `json:"gpus"`
	// GPUSampledAt is when the GPU query that the GPU readings of this
	// heartbeat (the GPUs' and the workers') come from started; absent
	// without a GPU backend or before the first query ends.
	GPUSampledAt *time.Time `json:"gpu_sampled_at,omitempty"`
	// LimitsEnforced says whether the hive runs workers under cgroup
	// limits; LimitsReason why not.
	LimitsEnforced bool   `json:"limits_enforced"`
	LimitsReason   string `json:"limits_reason,omitempty"`
	// Errors lists host-level reads that failed, e.g. the GPU query.
	Errors []string `json:"errors"`
}

// HeartbeatAck is the queen's answer to an accepted heartbeat.
type HeartbeatAck struct {
	// Ignored is true when the heartbeat was older than the last applied
	// one of its session; the hive then starts a new session.
	Ignored bool `json:"ignored"`
	// Dropped lists the worker entries the queen refused, with why; the
	// rest of the heartbeat was applied.
	Dropped []DroppedWorker `json:"dropped,omitempty"`
	// Clamped counts impossible values the queen replaced with null.
	Clamped int `json:"clamped,omitempty"`
	// NeedStatic asks the hive to send every worker's static fields: the
	// queen has not got them all (it restarted, say). The hive sends them
	// at once.
	NeedStatic bool `json:"need_static,omitempty"`
}

// DroppedWorker is a worker entry the queen refused.
type DroppedWorker struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Bounds of the wire format: the queen refuses what exceeds them, and the
// hive clips what it reads from the host to them before sending.
const (
	// MaxWorkerArgs and MaxArgLen bound a worker's command line.
	MaxWorkerArgs = 256
	MaxArgLen     = 4096
	// MaxModelLen bounds a model name.
	MaxModelLen = 256
	// MaxWorkerPIDs bounds one worker's pid list, MaxHeartbeatPIDs the
	// pid lists of a whole heartbeat.
	MaxWorkerPIDs    = 16384
	MaxHeartbeatPIDs = 65536
	// MaxHeartbeatBody bounds a heartbeat's body, inflated: a queen's
	// default, which its operator may change.
	MaxHeartbeatBody = 8 << 20
)
