//go:build linux

package benchmarks

import (
	"context"
	"fmt"
	"testing"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/gpu"
)

// BenchmarkGPUQuery measures one GPU query per pass through the
// nvidia-smi backend against the fake nvidia-smi (three process runs in
// parallel: --query-gpu, --query-compute-apps, pmon), for 8 GPUs and 64
// processes. The baseline is one plain run of the same fake, so the ratio
// shows the backend's own overhead over the process spawns it cannot avoid.
func BenchmarkGPUQuery(b *testing.B) {
	sc := gpufake.Scenario{}
	for i := range 8 {
		sc.GPUs = append(sc.GPUs, gpufake.GPU{Index: i, UUID: fmt.Sprintf("GPU-%08d-0000-0000-0000-000000000000", i), Name: "NVIDIA H200", MemTotalMiB: 143771, MemUsedMiB: 9000, UtilPct: 50, TempC: 50, PowerW: 500})
	}
	for p := range 64 {
		sm := p % 100
		sc.Procs = append(sc.Procs, gpufake.Proc{PID: 1000 + p, GPU: p % 8, Name: "python3", UsedMiB: 1000, SMPct: &sm})
	}
	fake := harness.FakeNvidiaSMI(b, sc)
	smi := &gpu.SMI{Path: fake.Path}
	b.Run("nvidia-smi-fake", func(b *testing.B) {
		for b.Loop() {
			snap, err := smi.Query(context.Background())
			if err != nil || len(snap.Procs) != 64 {
				b.Fatalf("%d procs, %v", len(snap.Procs), err)
			}
		}
	})
	b.Run("baseline-one-fake-run", func(b *testing.B) {
		for b.Loop() {
			if err := runOnce(fake.Path); err != nil {
				b.Fatal(err)
			}
		}
	})
}
