//go:build linux

package integration

import (
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// The test CONTRIBUTING.md shows: a worker spawned on a hive appears on the
// queen's stream with its model.
func TestContributingExample(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{})

	code, body := harness.Call(t, "POST", hive.URL+"/v1/workers", api.SpawnRequest{
		Group: "llm", Instance: "9301", Binary: harness.TestWorker(t),
		Args: []string{"--model", "qwen2.5-0.5b", "--cpu", "25"}, CPULimit: "50%",
	})
	if code != 201 {
		t.Fatalf("spawn: %d %s", code, body)
	}
	ev, _ := events.WaitType(5*time.Second, 0, api.EventWorkerAdded)
	var added api.WorkerAdded
	if err := ev.Decode(&added); err != nil || *added.Worker.Model != "qwen2.5-0.5b" {
		t.Fatalf("worker_added %s (%v)", ev.Data, err)
	}
}
