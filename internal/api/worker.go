package api

// In every record, pointer fields mean "not measured": a nil CPU
// percentage is "unknown this pass" (first sample, counter reset,
// unreadable), never a made-up zero.

import "time"

// State is a worker's lifecycle state.
type State string

// Worker states.
const (
	// StateStarting: spawned, not yet seen running by a collection pass,
	// or running but not yet healthy (a worker with a health check).
	StateStarting State = "starting"
	// StateReady: running, and healthy when it has a health check. Only
	// ready workers are scheduled.
	StateReady State = "ready"
	// StateUnhealthy: was ready, and its health check now fails.
	StateUnhealthy State = "unhealthy"
	StateExited    State = "exited"
)

// Worker is the telemetry record of one worker process and its cgroup:
// its identity, what changes rarely (WorkerStatic), what a collection pass
// measures, and how its last run ended (WorkerExit). The JSON is flat:
// the embedded parts' fields sit beside the rest.
type Worker struct {
	ID string `json:"id"`
	WorkerStatic

	State State   `json:"state"`
	PID   int     `json:"pid"`
	PIDs  PIDList `json:"pids"`

	// The measured numbers; each is one Stat (stats.go says what each
	// means, how it is rounded and bounded).
	UptimeS            *float64 `json:"uptime_s"`
	CPUPct             *float64 `json:"cpu_pct"`
	MemBytes           *uint64  `json:"mem_bytes"`
	MemRSSBytes        *uint64  `json:"mem_rss_bytes"`
	MemWorkingSetBytes *uint64  `json:"mem_working_set_bytes"`
	IOReadBps          *float64 `json:"io_read_bps"`
	IOWriteBps         *float64 `json:"io_write_bps"`
	// Cumulative counters: CPU seconds and I/O bytes the worker has used.
	CPUSeconds   *float64 `json:"cpu_seconds"`
	IOReadBytes  *uint64  `json:"io_read_bytes"`
	IOWriteBytes *uint64  `json:"io_write_bytes"`

	GPUs       []WorkerGPU `json:"gpus"`
	VRAMBytes  *uint64     `json:"vram_bytes"`
	GPUUtilPct *float64    `json:"gpu_util_pct"`
	// GPUError says why the GPU fields are null this pass (the GPU query
	// failed or timed out); it is also among Errors.
	GPUError string `json:"gpu_error,omitempty"`
	// GPUSampledAt is when the GPU query the GPU fields come from
	// started: GPUs are sampled on a clock of their own, and the figures
	// are as old as that query. Absent while no sample covers the worker
	// (it started after the newest one began).
	GPUSampledAt *time.Time `json:"gpu_sampled_at,omitempty"`

	// WorkerExit is how this run ended; all null while it runs.
	WorkerExit

	// Health is the worker's health check as last run (workers with one).
	Health *WorkerHealth `json:"health,omitempty"`

	// Errors lists what could not be read this pass, e.g.
	// "gpu: nvidia-smi timed out after 2s".
	Errors []string `json:"errors"`
}

// WorkerGPU is one GPU's use by all processes of a worker.
type WorkerGPU struct {
	Index     int      `json:"index"`
	UUID      string   `json:"uuid"`
	VRAMBytes *uint64  `json:"vram_bytes"`
	SMUtilPct *float64 `json:"sm_util_pct"`
}

// Ptr returns a pointer to v, for filling optional fields.
func Ptr[T any](v T) *T { return &v }
