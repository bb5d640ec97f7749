package monitor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/monitor"
)

// offLinux is the platform DetectPlatform gives on darwin and windows: no
// cgroups, no procfs. Using it on Linux runs the same code path for real.
var offLinux = monitor.Platform{NoCgroupsReason: "cgroups are a Linux feature; this hive runs on darwin"}

func TestSpawnFallbackOnNonLinux(t *testing.T) {
	m := startMonitor(t, monitor.Config{Platform: offLinux, StopGrace: 2 * time.Second})
	info := m.Info()
	if info.LimitsEnforced || info.CgroupMode != cgroups.ModeNone || info.LimitsReason != offLinux.NoCgroupsReason {
		t.Fatalf("Info = %+v, want limits not enforced with the reason", info)
	}
	// Limits are still validated, then not enforced.
	ready, waitReady := readyArgs(t)
	w := spawn(t, m, api.SpawnRequest{Instance: "plain", Args: append([]string{"--model", "tiny"}, ready...), CPULimit: "50%", MemoryLimit: "64Mi"})
	if w.PID <= 0 || w.LimitsEnforced || w.Cgroup != "" || w.CPULimitPct != nil || w.MemLimitBytes != nil {
		t.Fatalf("plain worker record %+v", w)
	}
	if w.Model == nil || *w.Model != "tiny" {
		t.Fatalf("model %v", w.Model)
	}
	if _, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: "bad", Binary: harness.TestWorker(t), CPULimit: "0"}); err == nil {
		t.Fatal("a bad limit was accepted because limits are not enforced")
	}
	waitReady()
	r, err := m.Stop(context.Background(), w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != api.StateExited || r.ExitCode == nil || *r.ExitCode != 0 {
		t.Fatalf("stopped plain worker: state %s exit %v signal %v", r.State, r.ExitCode, r.Signal)
	}
}

func TestCollectFallbackOnNonLinux(t *testing.T) {
	m := startMonitor(t, monitor.Config{Platform: offLinux})
	w := spawn(t, m, api.SpawnRequest{Instance: "plain", Args: []string{"--cpu", "30", "--exit-after", "1500ms", "--exit-code", "4"}})
	m.Collect(context.Background())
	recs := m.Collect(context.Background())
	r, ok := find(recs, w.ID)
	if !ok {
		t.Fatal("worker missing from the pass")
	}
	if r.State != api.StateReady || r.PID != w.PID || len(r.PIDs) != 1 || r.UptimeS == nil {
		t.Fatalf("record %+v", r)
	}
	// No procfs: nothing is measured, nothing is made up, and that is not
	// an error every pass (it is said once, in Info).
	if r.CPUPct != nil || r.MemBytes != nil || r.IOWriteBps != nil || len(r.Errors) != 0 {
		t.Fatalf("off-Linux record invents data or errors: cpu %v mem %v io %v errors %v", r.CPUPct, r.MemBytes, r.IOWriteBps, r.Errors)
	}
	// The exit is still noticed, with its code.
	harness.WaitFor(t, 5*time.Second, func() error {
		r, _ := find(m.Collect(context.Background()), w.ID)
		if r.State != api.StateExited {
			return fmt.Errorf("state %s", r.State)
		}
		if r.ExitCode == nil || *r.ExitCode != 4 || r.OOMKilled != nil {
			t.Fatalf("exit code %v oom %v, want 4 and unknown", r.ExitCode, r.OOMKilled)
		}
		return nil
	})
}

// Without cgroup rights but with procfs (a non-root hive on Linux), the
// main process is still measured.
func TestCollectPlainProcessOnLinux(t *testing.T) {
	harness.RequireLinux(t)
	p := monitor.DetectPlatform(cgroups.Config{Root: t.TempDir(), Mode: cgroups.ModeNone})
	if p.Cgroups != nil || p.NoCgroupsReason == "" || p.Proc == nil {
		t.Fatalf("platform %+v, want procfs without cgroups and a reason", p)
	}
	m := startMonitor(t, monitor.Config{Platform: p})
	w := spawn(t, m, api.SpawnRequest{Instance: "plain", Args: []string{"--cpu", "50", "--mem", "64Mi"}})
	harness.WaitFor(t, 5*time.Second, func() error {
		r, _ := find(m.Collect(context.Background()), w.ID)
		if r.MemRSSBytes == nil || *r.MemRSSBytes < 60<<20 {
			return fmt.Errorf("rss %v", r.MemRSSBytes)
		}
		return nil
	})
	recs := passes(t, m, 3, time.Second)[w.ID]
	within(t, "cpu_pct of a plain worker burning 50%", median(t, recs, "cpu_pct", cpuPct), 50, 15)
}

// Without cgroups a worker's processes are its process tree: the load and
// memory of children (vLLM keeps its CUDA context in one) count, and a
// child that ends leaves the pids.
func TestCollectPlainCountsChildren(t *testing.T) {
	harness.RequireLinux(t)
	p := monitor.DetectPlatform(cgroups.Config{Root: t.TempDir(), Mode: cgroups.ModeNone})
	m := startMonitor(t, monitor.Config{Platform: p})
	// The main process and two children, each burning 30 % and holding
	// 50 MiB.
	w := spawn(t, m, api.SpawnRequest{Instance: "tree", Args: []string{"--children", "2", "--cpu", "30", "--mem", "50Mi"}})
	var r api.Worker
	harness.WaitFor(t, 10*time.Second, func() error {
		r, _ = find(m.Collect(context.Background()), w.ID)
		if len(r.PIDs) != 3 || r.MemRSSBytes == nil || *r.MemRSSBytes < 3*48<<20 {
			return fmt.Errorf("pids %v rss %v", r.PIDs, deref(r.MemRSSBytes))
		}
		return nil
	})
	if r.PIDs[0] != w.PID || r.LimitsEnforced {
		t.Fatalf("pids %v (main %d), limits enforced %v", r.PIDs, w.PID, r.LimitsEnforced)
	}
	recs := passes(t, m, 3, time.Second)[w.ID]
	within(t, "cpu_pct of a worker and two children burning 30% each", median(t, recs, "cpu_pct", cpuPct), 90, 25)
}
