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

// Worker is the telemetry record of one worker process and its cgroup.
type Worker struct {
	ID       string   `json:"id"`
	Group    string   `json:"group"`
	Instance string   `json:"instance"`
	PID      int      `json:"pid"`
	PIDs     PIDList  `json:"pids"`
	Binary   string   `json:"binary"`
	Args     []string `json:"args"`
	Model    *string  `json:"model"`
	State    State    `json:"state"`
	// Cgroup is the worker's cgroup path; empty when limits are not enforced.
	Cgroup         string `json:"cgroup,omitempty"`
	LimitsEnforced bool   `json:"limits_enforced"`

	StartedAt *time.Time `json:"started_at"`
	UptimeS   *float64   `json:"uptime_s"`

	CPUPct        *float64 `json:"cpu_pct"`
	CPULimitPct   *float64 `json:"cpu_limit_pct"`
	MemLimitBytes *int64   `json:"mem_limit_bytes"`
	PidsLimit     *int64   `json:"pids_limit,omitempty"`

	MemBytes           *uint64 `json:"mem_bytes"`
	MemRSSBytes        *uint64 `json:"mem_rss_bytes"`
	MemWorkingSetBytes *uint64 `json:"mem_working_set_bytes"`

	IOReadBps  *float64 `json:"io_read_bps"`
	IOWriteBps *float64 `json:"io_write_bps"`

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

	ExitCode  *int       `json:"exit_code"`
	Signal    *string    `json:"signal"`
	OOMKilled *bool      `json:"oom_killed"`
	ExitedAt  *time.Time `json:"exited_at,omitempty"`
	// Stopped says the exit was asked for (a stop request, or a hive
	// stopping its workers as it exits), not the worker's own doing.
	Stopped bool `json:"stopped,omitempty"`
	// LogTail is the end of an exited worker's output (at most 4 KiB).
	LogTail string `json:"log_tail,omitempty"`

	// Health is the worker's health check as last run (workers with one).
	Health *WorkerHealth `json:"health,omitempty"`
	// Restarts counts the hive's restarts of this worker; LastExit is how
	// the run before this one ended; RestartError says why the hive will
	// not restart it again (its restart limit).
	Restarts     int         `json:"restarts"`
	LastExit     *WorkerExit `json:"last_exit,omitempty"`
	RestartError string      `json:"restart_error,omitempty"`

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

// Static returns the worker's static fields.
func (w Worker) Static() WorkerStatic { return StaticOf(&w) }
