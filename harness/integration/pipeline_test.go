//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// Spawn through the hive API, see worker_added on the queen's stream with
// the worker's model and pid, stop it, see worker_removed; 20 times, with
// the time from the spawn request to the event at the SSE client.
func TestSpawnStopReachesStream(t *testing.T) {
	queen := harness.StartQueen(t)
	// Subscribed before the hive starts, so its hive_online is not missed.
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{})
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL})
	_, next := events.WaitType(10*time.Second, 0, api.EventHiveOnline)
	worker := harness.TestWorker(t)

	const n = 20
	var lat []time.Duration
	for i := range n {
		id := fmt.Sprintf("llm-w%02d", i)
		model := fmt.Sprintf("model-%d", i)
		start := time.Now()
		code, body := harness.Call(t, "POST", hive.URL+"/v1/workers", api.SpawnRequest{
			Group: "llm", Instance: fmt.Sprintf("w%02d", i), Binary: worker, Args: []string{"--model", model}, MemoryLimit: "64Mi",
		})
		if code != 201 {
			t.Fatalf("spawn %s: %d %s", id, code, body)
		}
		var rec api.Worker
		if err := json.Unmarshal(body, &rec); err != nil {
			t.Fatal(err)
		}
		ev, idx := events.WaitFor(5*time.Second, next, func(e harness.Event) bool {
			var d api.WorkerAdded
			return e.Type == api.EventWorkerAdded && e.Decode(&d) == nil && d.Worker.ID == id
		})
		lat = append(lat, ev.At.Sub(start))
		next = idx + 1
		var added api.WorkerAdded
		_ = ev.Decode(&added)
		if added.Worker.PID != rec.PID || added.Worker.Model == nil || *added.Worker.Model != model || added.HiveID != hive.Name {
			t.Fatalf("worker_added %+v, want pid %d model %s on %s", added, rec.PID, model, hive.Name)
		}
	}
	slices.Sort(lat)
	t.Logf("spawn request -> worker_added at an SSE client, %d spawns: median %v, worst %v", n, lat[n/2], lat[n-1])

	for i := range n {
		id := fmt.Sprintf("llm-w%02d", i)
		if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+id, nil); code != 200 {
			t.Fatalf("stop %s: %d %s", id, code, body)
		}
		ev, _ := events.WaitFor(5*time.Second, next, func(e harness.Event) bool {
			var d api.WorkerRemoved
			return e.Type == api.EventWorkerRemoved && e.Decode(&d) == nil && d.WorkerID == id
		})
		var rm api.WorkerRemoved
		_ = ev.Decode(&rm)
		if rm.Reason != api.ReasonStopped || !rm.Worker.Stopped || rm.ExitCode == nil || *rm.ExitCode != 0 || rm.OOMKilled == nil || *rm.OOMKilled {
			t.Fatalf("worker_removed %+v, want stopped, exit code 0, not OOM", rm)
		}
	}
	hive.Stop()
	queen.Stop()
}
