package api

import "time"

// Event types, as they appear on the stream.
const (
	EventHiveOnline    = "hive_online"
	EventHiveStale     = "hive_stale"
	EventHiveRemoved   = "hive_removed"
	EventHiveTelemetry = "hive_telemetry"
	EventWorkerAdded   = "worker_added"
	EventWorkerChanged = "worker_changed"
	EventWorkerRemoved = "worker_removed"
	// EventSnapshot opens every stream: the whole fleet (as the filters
	// see it). Marked resync, it replaces what a reconnecting client had,
	// when the queen could not replay what it missed.
	EventSnapshot = "snapshot"
)

// EventTypes lists every event type of the stream, for ?types=.
var EventTypes = []string{EventSnapshot, EventHiveOnline, EventHiveStale, EventHiveRemoved, EventHiveTelemetry,
	EventWorkerAdded, EventWorkerChanged, EventWorkerRemoved, EventQueen}

// Snapshot is the data of a snapshot event.
type Snapshot struct {
	// Resync is true when the client asked to resume from an event the
	// queen no longer has (another queen run, or older than its replay
	// buffer): the client must drop what it had.
	Resync bool   `json:"resync"`
	Hives  []Hive `json:"hives"`
}

// WorkerChanged is the data of worker_changed: a worker's state (starting,
// ready, unhealthy) or its static fields (its limits, say) changed; the
// record is whole.
type WorkerChanged struct {
	HiveID string    `json:"hive_id"`
	At     time.Time `json:"at"`
	SentAt time.Time `json:"sent_at"`
	Worker Worker    `json:"worker"`
}

// HiveTelemetry is the data of hive_telemetry, every heartbeat: the
// numbers only. Static fields travel in worker_added, worker_changed and
// the snapshot.
type HiveTelemetry struct {
	HiveID string `json:"hive_id"`
	// At is the queen's clock when it applied the heartbeat, SentAt the
	// hive's when it sent it (the same on worker events): At − SentAt is
	// the heartbeat's transit and ingest, plus the clocks' skew.
	At     time.Time `json:"at"`
	SentAt time.Time `json:"sent_at"`
	Node   NodeStats `json:"node"`
	// WorkerFields names the elements of each worker row; StatFields
	// those of its stats.
	WorkerFields []string          `json:"worker_fields"`
	StatFields   []string          `json:"stat_fields"`
	Workers      []WorkerTelemetry `json:"workers"`
}

// TelemetryStats are the stats hive_telemetry carries: what a client
// cannot work out from the rest (uptime is at − started_at; a worker's
// VRAM and GPU utilisation are in its gpus).
var TelemetryStats = StatFields[:StatUptimeS]

// TelemetryWorkerFields names the elements of a worker row in
// hive_telemetry.
var TelemetryWorkerFields = []string{"id", "state", "stats", "gpus"}

// NodeStats are a host's numbers: CPU % of the whole host, memory used,
// and its GPUs'.
type NodeStats struct {
	CPUPct       *float64      `json:"cpu_pct"`
	MemUsedBytes *uint64       `json:"mem_used_bytes"`
	GPUs         []NodeGPUStat `json:"gpus"`
	Errors       []string      `json:"errors,omitempty"`
}

// WorkerTelemetry is one worker in hive_telemetry, written as a row
// [id, state, stats, gpus] (gpus left out when it has none): a hundred
// workers' names of fields would be a fifth of the event.
type WorkerTelemetry struct {
	ID    string    `json:"id"`
	State State     `json:"state"`
	Stats Stats     `json:"stats"`
	GPUs  []GPUStat `json:"gpus,omitempty"`
}

// HiveOnline is the data of hive_online: a hive appeared, came back from
// stale, or restarted (a new session). Hive is the whole hive, workers
// and all, and replaces what a client had of it: a hive joining with a
// hundred workers is one event, not a hundred worker_added.
type HiveOnline struct {
	HiveID    string `json:"hive_id"`
	HiveURL   string `json:"hive_url"`
	Restarted bool   `json:"restarted"`
	Returned  bool   `json:"returned"` // was stale
	Hive      Hive   `json:"hive"`
}

// WorkersOfModel returns the workers of ws that serve model, in a new
// slice.
func WorkersOfModel(ws []Worker, model string) []Worker {
	out := []Worker{}
	for _, w := range ws {
		if w.Model != nil && *w.Model == model {
			out = append(out, w)
		}
	}
	return out
}

// HiveGone is the data of hive_stale and hive_removed. A removed hive's
// workers are removed with it, in this one event (no worker_removed for
// each); WorkerIDs names them.
type HiveGone struct {
	HiveID    string    `json:"hive_id"`
	LastSeen  time.Time `json:"last_seen"`
	Reason    string    `json:"reason"`
	WorkerIDs []string  `json:"worker_ids,omitempty"`
}

// WorkerAdded is the data of worker_added.
type WorkerAdded struct {
	HiveID string    `json:"hive_id"`
	At     time.Time `json:"at"`
	SentAt time.Time `json:"sent_at"`
	Worker Worker    `json:"worker"`
}

// Reasons a worker leaves the registry.
const (
	ReasonExited        = "exited"         // the hive reported its exit
	ReasonStopped       = "stopped"        // it exited because it was told to stop
	ReasonGone          = "gone"           // dropped from the hive's list
	ReasonHiveRestarted = "hive_restarted" // not re-adopted after a hive restart
	ReasonReplaced      = "replaced"       // same id, new process
)

// WorkerRemoved is the data of worker_removed.
type WorkerRemoved struct {
	HiveID    string    `json:"hive_id"`
	At        time.Time `json:"at"`
	WorkerID  string    `json:"worker_id"`
	Reason    string    `json:"reason"`
	ExitCode  *int      `json:"exit_code"`
	Signal    *string   `json:"signal"`
	OOMKilled *bool     `json:"oom_killed"`
	// LogTail is the end of its output, when its hive keeps logs.
	LogTail string `json:"log_tail,omitempty"`
	Worker  Worker `json:"worker"`
}
