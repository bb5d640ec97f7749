package api

import "time"

// Event types, as they appear on the stream.
const (
	EventHiveOnline    = "hive_online"
	EventHiveStale     = "hive_stale"
	EventHiveRemoved   = "hive_removed"
	EventHiveTelemetry = "hive_telemetry"
	EventWorkerAdded   = "worker_added"
	EventWorkerRemoved = "worker_removed"
)

// HiveOnline is the data of hive_online: a hive appeared, came back from
// stale, or restarted (a new session).
type HiveOnline struct {
	HiveID    string `json:"hive_id"`
	HiveURL   string `json:"hive_url"`
	Restarted bool   `json:"restarted"`
	Returned  bool   `json:"returned"` // was stale
}

// HiveGone is the data of hive_stale and hive_removed.
type HiveGone struct {
	HiveID   string    `json:"hive_id"`
	LastSeen time.Time `json:"last_seen"`
	Reason   string    `json:"reason"`
}

// WorkerAdded is the data of worker_added.
type WorkerAdded struct {
	HiveID string `json:"hive_id"`
	Worker Worker `json:"worker"`
}

// Reasons a worker leaves the registry.
const (
	ReasonExited        = "exited"         // the hive reported its exit
	ReasonGone          = "gone"           // dropped from the hive's list
	ReasonHiveRestarted = "hive_restarted" // not re-adopted after a hive restart
	ReasonReplaced      = "replaced"       // same id, new process
	ReasonHiveRemoved   = "hive_removed"   // its hive went silent past the TTL
)

// WorkerRemoved is the data of worker_removed.
type WorkerRemoved struct {
	HiveID    string  `json:"hive_id"`
	WorkerID  string  `json:"worker_id"`
	Reason    string  `json:"reason"`
	ExitCode  *int    `json:"exit_code"`
	Signal    *string `json:"signal"`
	OOMKilled *bool   `json:"oom_killed"`
	Worker    Worker  `json:"worker"`
}
