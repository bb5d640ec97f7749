//go:build linux

package integration

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/api"
)

func h100(i int, uuid string, usedMiB int) gpufake.GPU {
	return gpufake.GPU{Index: i, UUID: uuid, Name: "NVIDIA H100 80GB HBM3", MemTotalMiB: 81559, MemUsedMiB: usedMiB, UtilPct: 10, TempC: 40, PowerW: 200}
}

func ptr(v int) *int { return &v }

// Several hives with fake GPUs of different free VRAM, workers of
// different models and loads; every query answers what it should and a
// stale hive's workers are left out.
func TestSchedulingQueries(t *testing.T) {
	queen := harness.StartQueen(t)
	fakes := map[string]*harness.FakeSMI{}
	hives := map[string]*harness.Daemon{}
	for _, name := range []string{"h1", "h2", "h3"} {
		fakes[name] = harness.FakeNvidiaSMI(t, gpufake.Scenario{})
		hives[name] = harness.StartHive(t, harness.HiveOptions{ID: name, Queen: queen.URL,
			Args: []string{"--interval", "300ms", "--gpu", "nvidia-smi", "--nvidia-smi", fakes[name].Path}})
	}
	busy := spawn(t, hives["h1"], "a", api.SpawnRequest{Args: []string{"--model", "llama", "--cpu", "60"}})
	qwen := spawn(t, hives["h1"], "b", api.SpawnRequest{Args: []string{"--model", "qwen"}})
	idle := spawn(t, hives["h2"], "c", api.SpawnRequest{Args: []string{"--model", "llama"}})
	staleW := spawn(t, hives["h3"], "d", api.SpawnRequest{Args: []string{"--model", "mistral"}})
	_ = qwen
	fakes["h1"].Set(gpufake.Scenario{GPUs: []gpufake.GPU{h100(0, "GPU-11111111-0000-0000-0000-000000000000", 72000)},
		Procs: []gpufake.Proc{{PID: busy.PID, GPU: 0, Name: "testworker", UsedMiB: 60000, SMPct: ptr(90)}}})
	fakes["h2"].Set(gpufake.Scenario{GPUs: []gpufake.GPU{h100(0, "GPU-22222222-0000-0000-0000-000000000000", 30000), h100(1, "GPU-22222222-1111-0000-0000-000000000000", 4000)},
		Procs: []gpufake.Proc{{PID: idle.PID, GPU: 0, Name: "testworker", UsedMiB: 20000, SMPct: ptr(3)}}})
	fakes["h3"].Set(gpufake.Scenario{GPUs: []gpufake.GPU{h100(0, "GPU-33333333-0000-0000-0000-000000000000", 0)},
		Procs: []gpufake.Proc{{PID: staleW.PID, GPU: 0, Name: "testworker", UsedMiB: 1000}}})

	// Wait until the queen has every hive's GPUs and every worker's loads.
	harness.WaitFor(t, 20*time.Second, func() error {
		ws := queenWorkers(t, queen, "")
		if len(ws) != 4 {
			return fmt.Errorf("%d workers", len(ws))
		}
		for _, w := range ws {
			if w.CPUPct == nil || w.GPUUtilPct == nil {
				return fmt.Errorf("%s not measured yet", w.ID)
			}
			if w.ID == busy.ID && (*w.CPUPct < 30 || *w.GPUUtilPct != 90) {
				return fmt.Errorf("busy worker reads cpu %.0f gpu %.0f", *w.CPUPct, *w.GPUUtilPct)
			}
		}
		return nil
	})

	// Freeze h3: its heartbeats stop, and after 3 intervals it is stale.
	h3 := hives["h3"]
	if err := syscall.Kill(h3.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(h3.Pid(), syscall.SIGCONT) })
	harness.WaitFor(t, 5*time.Second, func() error {
		var h api.Hive
		harness.Get(t, queen.URL+"/v1/hives/h3", &h)
		if h.State != api.HiveStateStale {
			return errors.New("h3 not stale yet")
		}
		return nil
	})

	var d api.Decision
	harness.Get(t, queen.URL+"/v1/schedule?model=llama", &d)
	if d.Kind != "worker" || d.Worker.ID != idle.ID || d.HiveID != "h2" {
		t.Errorf("schedule llama = %+v, want the idle worker on h2, not the busy one on h1", d)
	}
	harness.Get(t, queen.URL+"/v1/schedule?model=qwen", &d)
	if d.Kind != "worker" || d.HiveID != "h1" {
		t.Errorf("schedule qwen = %+v, want the qwen worker on h1", d)
	}
	// mistral is served only on the stale h3: capacity decides, among
	// online hives only (h3's empty GPU does not count).
	harness.Get(t, queen.URL+"/v1/schedule?model=mistral&vram_bytes=40Gi", &d)
	if d.Kind != "gpu" || d.HiveID != "h2" || d.GPU.Index != 1 {
		t.Errorf("schedule mistral 40Gi = %+v, want h2 GPU 1 (the most free VRAM on an online hive)", d)
	}
	code, body := harness.Call(t, "GET", queen.URL+"/v1/schedule?model=mistral&vram_bytes=79Gi", nil)
	if code != 404 || !strings.Contains(string(body), "1 on stale hives") {
		t.Errorf("schedule mistral 79Gi: %d %s, want 404 naming the stale worker", code, body)
	}
	if ws := queenWorkers(t, queen, "?model=llama&idle=true"); len(ws) != 1 || ws[0].ID != idle.ID {
		t.Errorf("idle llama workers %+v", ws)
	}
	if ws := queenWorkers(t, queen, "?hive=h3"); len(ws) != 1 || !ws[0].Stale {
		t.Errorf("h3 workers %+v, want d listed and marked stale", ws)
	}
	if err := syscall.Kill(h3.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
