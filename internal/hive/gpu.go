package hive

import (
	"context"
	"time"

	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/monitor"
)

// gpuSource gives the monitor the GPU sampler's per-process view: the
// monitor defines the small interface it needs, the hive adapts the GPU
// package to it, and neither of the two imports the other.
type gpuSource struct {
	s *gpu.Sampler
	// wait runs a query in every pass and waits for it, instead of
	// taking the newest sample (Config.GPUSampleInPass).
	wait bool
}

// GPUSource returns the monitor's GPU source, or nil for the none
// backend: workers then have null GPU fields and no GPU errors. With
// wait, every pass runs a query and waits for it (the sampler's deadline
// and single flight apply); else it takes the newest sample of the
// sampler's own clock (gpu.Sampler.Run) and never waits.
func GPUSource(s *gpu.Sampler, wait bool) monitor.GPUSource {
	if s == nil || !s.Enabled() {
		return nil
	}
	return gpuSource{s: s, wait: wait}
}

// GPUUsage attributes the newest sample (or, with wait, a fresh one) per
// host pid.
func (g gpuSource) GPUUsage(ctx context.Context) (monitor.GPUUsage, error) {
	var snap gpu.Snapshot
	var at time.Time
	var err error
	if g.wait {
		at = time.Now()
		snap, err = g.s.Sample(ctx)
	} else {
		snap, at, err = g.s.Last()
	}
	if err != nil {
		return monitor.GPUUsage{}, err
	}
	return monitor.GPUUsage{At: at, ByPID: snap.ByPID(), Partial: snap.Partial}, nil
}
