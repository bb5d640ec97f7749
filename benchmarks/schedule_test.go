package benchmarks

import (
	"slices"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/registry"
)

// BenchmarkSchedule is a scheduling answer at fleet size: 100 hives of 100
// workers (8 GPUs each), as a router asks it. "route" finds the least
// loaded worker serving a model a quarter of the fleet serves; "all" ranks
// them all; "place" answers (and then releases) a 16 GiB placement for a
// model nobody serves. Reports p50 and p99 of single answers.
func BenchmarkSchedule(b *testing.B) {
	r := registry.New(registry.Config{HeartbeatRate: 1e9, HeartbeatBurst: 1e9, Telemetry: func() bool { return false }})
	for _, h := range loadgen.Fleet("node", 100, 100, 8) {
		if _, err := r.Ingest(h.Next()); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		q    registry.Request
	}{
		{"route", registry.Request{Model: "qwen2.5-0.5b"}},
		{"all", registry.Request{Model: "qwen2.5-0.5b", All: true}},
		{"place", registry.Request{Model: "not-served", VRAMBytes: 16 << 30}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				d, err := r.Schedule(tc.q)
				took = append(took, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if d.ReservationID != "" {
					if err := r.Release(d.ReservationID); err != nil {
						b.Fatal(err)
					}
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}
