//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// spawn starts a test worker on hive through its API and returns the record.
func spawn(t *testing.T, hive *harness.Daemon, inst string, spec api.SpawnRequest) api.Worker {
	t.Helper()
	if spec.Group == "" {
		spec.Group = "llm"
	}
	spec.Instance = inst
	if spec.Binary == "" {
		spec.Binary = harness.TestWorker(t)
	}
	code, body := harness.Call(t, "POST", hive.URL+"/v1/workers", spec)
	if code != 201 {
		t.Fatalf("spawn %s on %s: %d %s", spec.ID(), hive.Name, code, body)
	}
	var rec api.Worker
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// isEvent matches an event of type typ whose data, decoded into T,
// satisfies ok.
func isEvent[T any](typ string, ok func(T) bool) func(harness.Event) bool {
	return func(e harness.Event) bool {
		if e.Type != typ {
			return false
		}
		var v T
		return e.Decode(&v) == nil && ok(v)
	}
}

func removedOf(id string) func(harness.Event) bool {
	return isEvent(api.EventWorkerRemoved, func(d api.WorkerRemoved) bool { return d.WorkerID == id })
}

// addedOf matches the event that brings worker id to a stream: its
// worker_added, or the hive_online of a hive joining with it.
func addedOf(id string) func(harness.Event) bool { return harness.Brings(id) }

func queenWorkers(t *testing.T, queen *harness.Daemon, query string) []api.FleetWorker {
	t.Helper()
	var ws []api.FleetWorker
	harness.Get(t, queen.URL+"/v1/workers"+query, &ws)
	return ws
}

func within(v *float64, want, tol float64) error {
	if v == nil {
		return fmt.Errorf("null")
	}
	if *v < want-tol || *v > want+tol {
		return fmt.Errorf("%.1f, want %.0f±%.0f", *v, want, tol)
	}
	return nil
}

func pct(v *float64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprintf("%.1f", *v)
}

func mib(v *uint64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprintf("%.1f MiB", float64(*v)/(1<<20))
}
