//go:build linux

package integration

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func TestMain(m *testing.M) { harness.Main(m) }

// A hive started after a worker finds it in the cgroup tree, serves it
// with its model read from /proc, and on SIGTERM exits 0 leaving the
// worker running.
func TestHiveAdoptsAndSurvivesRestart(t *testing.T) {
	parent := harness.CgroupParent(t)
	m := monitor.New(monitor.Config{Platform: monitor.DetectPlatform(cgroups.Config{Parent: parent})})
	defer m.Close()
	w, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: "a", Binary: harness.TestWorker(t), Args: []string{"--model", "qwen", "--cpu", "20"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.StopAll(context.Background())

	hive := harness.StartHive(t, harness.HiveOptions{CgroupParent: parent, Args: []string{"--interval", "200ms"}})
	harness.WaitFor(t, 10*time.Second, func() error {
		var ws []api.Worker
		harness.Get(t, hive.URL+"/v1/workers", &ws)
		if len(ws) != 1 || ws[0].PID != w.PID || ws[0].State != api.StateReady || ws[0].Model == nil || *ws[0].Model != "qwen" || ws[0].CPUPct == nil {
			return fmt.Errorf("hive has not adopted llm-a yet: %+v", ws)
		}
		return nil
	})
	hive.Stop()
	if err := syscall.Kill(w.PID, 0); err != nil {
		t.Fatalf("worker died with the hive: %v", err)
	}
}
