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
	// The worker reaches the stream in a worker_added, or in the hive's
	// hive_online if the hive had not joined the queen before the spawn.
	ev, _ := events.WaitFor(5*time.Second, 0, harness.Brings("llm-9301"))
	if w, _ := ev.Worker("llm-9301"); w.Model == nil || *w.Model != "qwen2.5-0.5b" {
		t.Fatalf("%s %s", ev.Type, ev.Data)
	}
}
