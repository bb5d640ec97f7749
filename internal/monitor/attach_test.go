package monitor

import (
	"errors"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// A worker's GPU fields come from a sample that can speak for it: none
// yet, or one that began before the worker started, leaves them null
// without an error (the next sample fills them); a failed source leaves
// them null with its error; a sample after the start fills them and says
// when it was taken.
func TestAttachGPUSampleAge(t *testing.T) {
	start := time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)
	vram := uint64(3 << 30)
	usage := func(at time.Time) GPUUsage {
		return GPUUsage{At: at, ByPID: map[int][]api.WorkerGPU{10: {{Index: 0, VRAMBytes: &vram}}}}
	}
	for _, tc := range []struct {
		name    string
		usage   GPUUsage
		err     error
		vram    *uint64
		errText string
	}{
		{name: "no sample yet", usage: GPUUsage{}},
		{name: "sample began before the worker", usage: usage(start.Add(-time.Millisecond))},
		{name: "source failed", usage: usage(start.Add(time.Second)), err: errors.New("nvidia-smi timed out after 2s"), errText: "nvidia-smi timed out after 2s"},
		{name: "sample after the start", usage: usage(start.Add(time.Second)), vram: &vram},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := api.Worker{PID: 10, PIDs: []int{10}, WorkerStatic: api.WorkerStatic{StartedAt: &start}}
			attachGPU(&rec, tc.usage, tc.err)
			switch {
			case tc.vram == nil && (rec.VRAMBytes != nil || rec.GPUs != nil || rec.GPUSampledAt != nil):
				t.Fatalf("vram %v gpus %v sampled at %v, want null", rec.VRAMBytes, rec.GPUs, rec.GPUSampledAt)
			case tc.vram != nil && (rec.VRAMBytes == nil || *rec.VRAMBytes != *tc.vram || rec.GPUSampledAt == nil || !rec.GPUSampledAt.Equal(tc.usage.At)):
				t.Fatalf("vram %v sampled at %v, want %d from the sample at %v", rec.VRAMBytes, rec.GPUSampledAt, *tc.vram, tc.usage.At)
			case rec.GPUError != tc.errText:
				t.Fatalf("gpu_error %q, want %q", rec.GPUError, tc.errText)
			}
		})
	}
}
