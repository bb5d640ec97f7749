package api

import (
	"time"

	"github.com/rbee-dev/rbee/internal/ids"
)

// SpawnRequest is the hive's POST /v1/workers: a worker to start.
type SpawnRequest struct {
	Group    string            `json:"group"`
	Instance string            `json:"instance"`
	Binary   string            `json:"binary"`
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	// CPULimit is percent of one core ("250%") or cores ("2.5"); "" = none.
	CPULimit string `json:"cpu_limit"`
	// MemoryLimit is bytes, optionally with K/M/G/T/Ki/Mi/Gi/Ti; "" = none.
	MemoryLimit string `json:"memory_limit"`
	// Dir is the working directory; "" means the hive's.
	Dir string `json:"dir,omitempty"`
	// Health, when set, checks the worker is ready to serve; without it
	// a worker is ready once its process runs.
	Health *HealthCheck `json:"health,omitempty"`
	// Restart, when set, restarts the worker when it exits by itself.
	Restart *RestartPolicy `json:"restart,omitempty"`
}

// ID returns the worker's stable id, "<group>-<instance>".
func (s SpawnRequest) ID() string { return ids.WorkerID(s.Group, s.Instance) }

// HiveInfo is the hive's GET /v1/info: how it runs workers and how its
// heartbeats fare.
type HiveInfo struct {
	HiveID  string `json:"hive_id"`
	HiveURL string `json:"hive_url"`
	Listen  string `json:"listen"`
	// SessionID is shown to the operator only.
	SessionID string `json:"session_id,omitempty"`
	Version   string `json:"version"`
	// CgroupMode is none, v1, hybrid or v2.
	CgroupMode   string `json:"cgroup_mode"`
	CgroupParent string `json:"cgroup_parent,omitempty"`
	// CgroupPlacement says how the workers' cgroup tree was placed and
	// why (--cgroup-parent, a systemd scope, below the cgroup root).
	CgroupPlacement string `json:"cgroup_placement,omitempty"`
	LimitsEnforced  bool   `json:"limits_enforced"`
	// LimitsReason says why limits are not enforced.
	LimitsReason     string `json:"limits_reason,omitempty"`
	GPUBackend       string `json:"gpu_backend"`
	GPUBackendReason string `json:"gpu_backend_reason"`
	// QueenURL is the first queen's URL; Queens has each queen's.
	QueenURL     string `json:"queen_url"`
	IntervalMS   int64  `json:"interval_ms"`
	WorkerBinDir string `json:"worker_bin_dir,omitempty"`
	// WorkerUser is who workers run as.
	WorkerUser    string            `json:"worker_user"`
	WorkerPidsMax int64             `json:"worker_pids_max"`
	AuthRequired  bool              `json:"auth_required"`
	TLS           bool              `json:"tls"`
	Refused       map[string]uint64 `json:"refused"`
	Workers       int               `json:"workers"`
	QueenFailures int               `json:"queen_failures"`
	LastDelivered time.Time         `json:"last_delivered,omitzero"`
	// Queens is how heartbeats fare at each queen.
	Queens []QueenLink `json:"queens"`
}

// QueenLink is a hive's heartbeats to one queen.
type QueenLink struct {
	URL string `json:"url"`
	// State is connecting (nothing delivered yet), ok or failing.
	State string `json:"state"`
	// SessionID is shown to the operator only.
	SessionID     string    `json:"session_id,omitempty"`
	Failures      int       `json:"failures"`
	LastError     string    `json:"last_error,omitempty"`
	FailingSince  time.Time `json:"failing_since,omitzero"`
	LastDelivered time.Time `json:"last_delivered,omitzero"`
	Sent          uint64    `json:"sent"`
	Failed        uint64    `json:"failed"`
}
