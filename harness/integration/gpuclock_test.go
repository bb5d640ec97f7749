package integration

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/api"
)

// A hung GPU backend delays no lifecycle event: with nvidia-smi hanging
// to its 6 s deadline, a spawn reaches the queen's stream as worker_added
// and a kill -9 as worker_removed long before the query ends (a pass
// that waited for the query, as before the GPU had a clock of its own,
// sent both only after the deadline). The worker's GPU fields say the
// query failed once it has, and come back with the GPU.
func TestHungGPUDelaysNoLifecycleEvent(t *testing.T) {
	const timeout = 6 * time.Second
	queen := harness.StartQueen(t)
	fake := harness.FakeNvidiaSMI(t, gpufake.H200Busy())
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL,
		Args: []string{"--interval", "500ms", "--gpu", "nvidia-smi", "--nvidia-smi", fake.Path, "--gpu-timeout", timeout.String()}})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream?types=hive_online,worker_added,worker_removed", harness.SSEOptions{})
	_, next := events.WaitType(10*time.Second, 0, api.EventHiveOnline)

	sc := gpufake.H200Busy()
	sc.Hang = true
	fake.Set(sc)
	// A query is hung now: the sampler's clock started one.
	harness.WaitFor(t, 5*time.Second, func() error {
		if n := len(fake.Running()); n == 0 {
			return fmt.Errorf("no nvidia-smi running yet")
		}
		return nil
	})
	hungSince := time.Now()

	t0 := time.Now()
	w := spawn(t, hive, "hung", api.SpawnRequest{Args: []string{"--model", "m"}})
	_, i := events.WaitFor(timeout, next, addedOf(w.ID))
	added := time.Since(t0)
	if err := syscall.Kill(w.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	events.WaitFor(timeout, i+1, removedOf(w.ID))
	removed := time.Since(t1)
	t.Logf("with nvidia-smi hung: spawn → worker_added %v, kill -9 → worker_removed %v", added.Round(time.Millisecond), removed.Round(time.Millisecond))
	// Both well inside the hung query's deadline, which is what a pass
	// waiting for it would have taken at least.
	if left := timeout - time.Since(hungSince); left < timeout/3 {
		t.Fatalf("the events came %v before the hung query's deadline: they waited for it", left)
	}

	// The next worker's GPU fields say why they are null once the hung
	// query has timed out, and are read again when nvidia-smi answers.
	w2 := spawn(t, hive, "after", api.SpawnRequest{Args: []string{"--model", "m"}})
	harness.WaitFor(t, 2*timeout, func() error {
		var r api.Worker
		harness.Get(t, hive.URL+"/v1/workers/"+w2.ID, &r)
		if r.VRAMBytes != nil || r.GPUError == "" {
			return fmt.Errorf("vram %v gpu_error %q, want null with the timeout", r.VRAMBytes, r.GPUError)
		}
		return nil
	})
	sc.Hang = false
	sc.Procs[0].PID = w2.PID
	fake.Set(sc)
	harness.WaitFor(t, 2*timeout, func() error {
		var r api.Worker
		harness.Get(t, hive.URL+"/v1/workers/"+w2.ID, &r)
		if r.VRAMBytes == nil || *r.VRAMBytes != 3786<<20 || r.GPUError != "" || r.GPUSampledAt == nil || r.GPUSampledAt.Before(*r.StartedAt) {
			return fmt.Errorf("vram %v gpu_error %q sampled at %v, want 3786 MiB from a sample after its start", r.VRAMBytes, r.GPUError, r.GPUSampledAt)
		}
		return nil
	})
}

// A hive restarted while nvidia-smi hangs serves its adopted workers from
// its first request: the first pass waits for the first GPU sample (so
// the first heartbeat has the GPUs), and until it ran a GET of an adopted
// worker answered 404 (CI, TestAdoptedWorkerKeepsHealthAndRestart).
func TestRestartedHiveServesAdoptedWorkersAtOnce(t *testing.T) {
	const timeout = 4 * time.Second
	fake := harness.FakeNvidiaSMI(t, gpufake.H200Busy())
	opts := harness.HiveOptions{CgroupParent: harness.CgroupParent(t), Env: []string{"RBEE_STATE_DIR=" + t.TempDir()},
		Args: []string{"--gpu", "nvidia-smi", "--nvidia-smi", fake.Path, "--gpu-timeout", timeout.String()}}
	hive := harness.StartHive(t, opts)
	w := spawn(t, hive, "kept", api.SpawnRequest{Args: []string{"--model", "m"}})
	hive.Stop()

	sc := gpufake.H200Busy()
	sc.Hang = true
	fake.Set(sc)
	start := time.Now()
	hive = harness.StartHive(t, opts) // returns once it listens
	got := hiveWorker(t, hive, w.ID)
	if took := time.Since(start); took > timeout/2 {
		t.Fatalf("the hive took %v to answer: it waited for the hung query", took)
	}
	if got.PID != w.PID || got.State == api.StateExited {
		t.Fatalf("adopted %s: pid %d state %s, want pid %d running", w.ID, got.PID, got.State, w.PID)
	}
	if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+w.ID, nil); code != 200 {
		t.Fatalf("stop %s: %d %s", w.ID, code, body)
	}
}
