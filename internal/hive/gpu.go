package hive

import (
	"context"

	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/monitor"
)

// gpuSource gives the monitor the GPU sampler's per-process view: the
// monitor defines the small interface it needs, the hive adapts the GPU
// package to it, and neither of the two imports the other.
type gpuSource struct{ s *gpu.Sampler }

// GPUSource returns the monitor's GPU source, or nil for the none
// backend: workers then have null GPU fields and no GPU errors.
func GPUSource(s *gpu.Sampler) monitor.GPUSource {
	if s == nil || !s.Enabled() {
		return nil
	}
	return gpuSource{s}
}

// GPUUsage runs one query (the sampler's deadline and single flight
// apply) and attributes it per host pid.
func (g gpuSource) GPUUsage(ctx context.Context) (monitor.GPUUsage, error) {
	snap, err := g.s.Sample(ctx)
	if err != nil {
		return monitor.GPUUsage{}, err
	}
	return monitor.GPUUsage{ByPID: snap.ByPID(), Partial: snap.Partial}, nil
}
