// Package gpu reads GPU telemetry through one of three backends chosen at
// start: NVML (go-nvml), nvidia-smi, or none. Each backend is a thin driver
// under logic that interprets its output; the Sampler on top gives every
// query a deadline, keeps at most one in flight, and never lets a failure
// read as an idle GPU.
package gpu

import (
	"context"

	"github.com/rbee-dev/rbee/internal/api"
)

// Process is one process's use of one GPU. PIDs are host pids, as NVML and
// nvidia-smi report them.
type Process struct {
	PID       int
	GPUIndex  int
	UUID      string
	VRAMBytes *uint64
	// SMUtilPct is nil when the driver reports no SM use for the process in
	// the sampling window (NVML leaves it out; pmon prints "-").
	SMUtilPct *float64
}

// Snapshot is one query's result.
type Snapshot struct {
	Devices []api.GPU
	Procs   []Process
	// Partial lists what could not be read while the rest could, e.g.
	// "nvidia-smi pmon timed out after 2s": per-process SM use is then
	// unknown but VRAM is not.
	Partial []string
}

// ByPID groups the snapshot's processes by host pid, each with the GPUs it
// uses, for attributing GPU use to workers.
func (s Snapshot) ByPID() map[int][]api.WorkerGPU {
	out := make(map[int][]api.WorkerGPU, len(s.Procs))
	for _, p := range s.Procs {
		out[p.PID] = append(out[p.PID], api.WorkerGPU{Index: p.GPUIndex, UUID: p.UUID, VRAMBytes: p.VRAMBytes, SMUtilPct: p.SMUtilPct})
	}
	return out
}

// Backend queries the GPUs of the host.
type Backend interface {
	// Name is "nvml", "nvidia-smi" or "none".
	Name() string
	// Query reads devices and processes; it returns when ctx is done.
	Query(ctx context.Context) (Snapshot, error)
	// Close releases the backend.
	Close() error
}

// None is the backend of a host without GPUs: empty snapshots, no errors.
type None struct{}

// Name returns "none".
func (None) Name() string { return "none" }

// Query returns an empty snapshot.
func (None) Query(context.Context) (Snapshot, error) { return Snapshot{}, nil }

// Close does nothing.
func (None) Close() error { return nil }
