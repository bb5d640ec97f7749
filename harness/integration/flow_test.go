//go:build linux

package integration

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// spawn -> cgroup -> collection -> heartbeat -> registry -> SSE, checking
// the values that arrive against the load the worker was told to make.
func TestEndToEndTelemetryFlow(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--interval", "500ms"}})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{})
	w := spawn(t, hive, "9301", api.SpawnRequest{Args: []string{"--model", "qwen2.5-0.5b", "--cpu", "50", "--mem", "128Mi"}, CPULimit: "200%", MemoryLimit: "512Mi"})

	// worker_added (or the hive_online of the hive joining with it)
	// carries the whole record: identity, model, limits.
	ev, _ := events.WaitFor(10*time.Second, 0, addedOf(w.ID))
	if r, _ := ev.Worker(w.ID); r.PID != w.PID || r.Model == nil || *r.Model != "qwen2.5-0.5b" || !r.LimitsEnforced ||
		r.CPULimitPct == nil || *r.CPULimitPct != 200 || r.MemLimitBytes == nil || *r.MemLimitBytes != 512<<20 {
		t.Fatalf("worker_added %s", ev.Data)
	}
	// hive_telemetry carries the numbers, against the load caused.
	var last string
	ev, _ = events.WaitFor(20*time.Second, 0, isEvent(api.EventHiveTelemetry, func(h api.HiveTelemetry) bool {
		for _, r := range h.Workers {
			if r.ID != w.ID {
				continue
			}
			rss := r.Stats[api.StatMemRSSBytes] / (1 << 20)
			cpu := within(r.Stats.Ptr(api.StatCPUPct), 50, 15)
			last = fmt.Sprintf("cpu %s%%, rss %.1f MiB", pct(r.Stats.Ptr(api.StatCPUPct)), rss)
			return r.State == api.StateReady && cpu == nil && rss > 120 && rss < 150
		}
		return false
	}))
	t.Logf("hive_telemetry id=%s matched ground truth (%s)", ev.ID, last)
	ws := queenWorkers(t, queen, "?model=qwen2.5-0.5b")
	if len(ws) != 1 || ws[0].PID != w.PID || ws[0].HiveID != hive.Name {
		t.Fatalf("queen /v1/workers %+v", ws)
	}
}

// A worker killed from outside leaves the registry with its signal within
// a second; one killed by the OOM killer is reported as OOM.
func TestWorkerDiesRemovedFromRegistry(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{})
	w := spawn(t, hive, "victim", api.SpawnRequest{Args: []string{"--model", "m"}})
	_, next := events.WaitFor(5*time.Second, 0, addedOf(w.ID))

	killed := time.Now()
	if err := syscall.Kill(w.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ev, next := events.WaitFor(5*time.Second, next, removedOf(w.ID))
	var rm api.WorkerRemoved
	_ = ev.Decode(&rm)
	took := ev.At.Sub(killed)
	t.Logf("kill -> worker_removed at the SSE client: %v", took)
	if took > time.Second {
		t.Fatalf("worker_removed arrived %v after the kill, want within 1s", took)
	}
	if rm.Reason != api.ReasonExited || rm.Signal == nil || *rm.Signal != "SIGKILL" || rm.OOMKilled == nil || *rm.OOMKilled {
		t.Fatalf("worker_removed %+v, want SIGKILL, not OOM", rm)
	}
	if ws := queenWorkers(t, queen, "?state=ready"); len(ws) != 0 {
		t.Fatalf("killed worker still listed as running: %+v", ws)
	}

	oom := spawn(t, hive, "hog", api.SpawnRequest{Args: []string{"--mem", "256Mi"}, MemoryLimit: "64Mi"})
	ev, _ = events.WaitFor(10*time.Second, next, removedOf(oom.ID))
	_ = ev.Decode(&rm)
	if rm.OOMKilled == nil || !*rm.OOMKilled || rm.Signal == nil || *rm.Signal != "SIGKILL" {
		t.Fatalf("worker_removed of the OOM-killed worker %+v, want oom_killed", rm)
	}
}
