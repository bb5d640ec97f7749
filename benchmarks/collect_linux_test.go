//go:build linux

package benchmarks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func TestMain(m *testing.M) { harness.Main(m) }

// BenchmarkCollect measures one collection pass over N real workers, each
// a sleeping process in its own cgroup. The containerd sub-benchmark reads
// the same cgroups with containerd/cgroups' Stat(), the library path the
// monitor avoids; compare the two with benchstat.
func BenchmarkCollect(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			m, _, _ := spawnSleepers(b, n)
			m.Collect(context.Background())
			b.ResetTimer()
			for b.Loop() {
				recs := m.Collect(context.Background())
				if len(recs) != n || len(recs[0].Errors) > 0 {
					b.Fatalf("pass returned %d records, errors %v", len(recs), recs[0].Errors)
				}
			}
		})
	}
	b.Run("containerd-stat/workers=100", func(b *testing.B) {
		_, parent, rels := spawnSleepers(b, 100)
		stat := containerdStat(b, parent, rels)
		b.ResetTimer()
		for b.Loop() {
			if err := stat(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func spawnSleepers(b *testing.B, n int) (*monitor.Monitor, string, []string) {
	parent := harness.CgroupParent(b)
	p := monitor.DetectPlatform(cgroups.Config{Parent: parent})
	if p.Cgroups == nil {
		b.Fatalf("cgroups: %s", p.NoCgroupsReason)
	}
	m := monitor.New(monitor.Config{Platform: p, StopGrace: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.StopAll(ctx); err != nil {
			b.Error(err)
		}
		m.Close()
	})
	var rels []string
	for i := range n {
		inst := fmt.Sprintf("w%03d", i)
		_, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "bench", Instance: inst, Binary: "/bin/sleep", Args: []string{"3600"}, MemoryLimit: "64Mi"})
		if err != nil {
			b.Fatal(err)
		}
		rels = append(rels, "bench/"+inst)
	}
	return m, parent, rels
}

// containerdStat returns a function reading every cgroup with the
// library's full Stat.
func containerdStat(b *testing.B, parent string, rels []string) func() error {
	if cgroups.Detect(cgroups.DefaultRoot) == cgroups.ModeV2 {
		m, err := cgroups.New(cgroups.Config{Parent: parent})
		if err != nil {
			b.Fatal(err)
		}
		var gs []*cgroup2.Manager
		for _, rel := range rels {
			g, err := cgroup2.Load(filepath.Join(m.Parent(), rel))
			if err != nil {
				b.Fatal(err)
			}
			gs = append(gs, g)
		}
		return func() error {
			for _, g := range gs {
				if _, err := g.Stat(); err != nil {
					return err
				}
			}
			return nil
		}
	}
	var gs []cgroup1.Cgroup
	for _, rel := range rels {
		g, err := cgroup1.Load(cgroup1.NestedPath(filepath.Join(parent, rel)))
		if err != nil {
			b.Fatal(err)
		}
		gs = append(gs, g)
	}
	return func() error {
		for _, g := range gs {
			if _, err := g.Stat(cgroup1.IgnoreNotExist); err != nil {
				return err
			}
		}
		return nil
	}
}
