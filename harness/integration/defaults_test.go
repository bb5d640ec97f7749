//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// A hive started without --worker-log-dir keeps its workers' output in
// <state-dir>/logs, where `rbee-hive logs` finds it, as docker and
// journald keep a service's; --worker-log-dir "" discards it (issue 21:
// the default discarded it, and `logs ID` answered 404).
func TestWorkerLogsKeptByDefault(t *testing.T) {
	state := t.TempDir()
	hive := harness.StartHive(t, harness.HiveOptions{Env: []string{"RBEE_STATE_DIR=" + state}})
	w := spawn(t, hive, "1", api.SpawnRequest{Args: []string{"--model", "m", "--say", "loaded the model in 3.2 s"}})
	harness.WaitFor(t, 5*time.Second, func() error {
		code, body := harness.Call(t, "GET", hive.URL+"/v1/workers/"+w.ID+"/logs", nil)
		if code != 200 || !strings.Contains(string(body), "loaded the model in 3.2 s") {
			return fmt.Errorf("logs: %d %q", code, body)
		}
		return nil
	})
	b, err := os.ReadFile(filepath.Join(state, "logs", w.ID+".log"))
	if err != nil || !strings.Contains(string(b), "loaded the model") {
		t.Fatalf("%s/logs/%s.log: %q, %v", state, w.ID, b, err)
	}
	// The CLI, as a user types it.
	t.Setenv("RBEE_TOKEN", harness.Token)
	out, errOut, code := runCLI(t, harness.Build(t, "./cmd/rbee-hive"), "logs", "--hive", hive.URL, w.ID)
	if code != 0 || !strings.Contains(out, "loaded the model in 3.2 s") {
		t.Errorf("rbee-hive logs %s: status %d, %q %q", w.ID, code, out, errOut)
	}

	discard := harness.StartHive(t, harness.HiveOptions{ID: "discarding", Args: []string{"--worker-log-dir", ""}})
	d := spawn(t, discard, "1", api.SpawnRequest{Args: []string{"--model", "m", "--say", "into the void"}})
	if code, body := harness.Call(t, "GET", discard.URL+"/v1/workers/"+d.ID+"/logs", nil); code != 404 || !strings.Contains(string(body), "discard") {
		t.Errorf(`logs on a hive with --worker-log-dir "": %d %s; want 404 saying the output is discarded`, code, body)
	}
}

// Exited workers stay listed with how they ended, on the hive and the
// queen, until removed (rbee-hive rm, prune) or past --exited-retention;
// a running one cannot be removed (issue 21: the hive forgot them after
// 30 s, and `show` answered 404).
func TestExitedWorkersStayListed(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--exited-retention", "3s", "--interval", "200ms"}})
	crash := spawn(t, hive, "crash", api.SpawnRequest{Args: []string{"--model", "m", "--exit-after", "50ms", "--exit-code", "3"}})
	run := spawn(t, hive, "run", api.SpawnRequest{Args: []string{"--model", "m"}})
	queenSees := func(id string) (api.FleetWorker, bool) {
		for _, w := range queenWorkers(t, queen, "") {
			if w.ID == id {
				return w, true
			}
		}
		return api.FleetWorker{}, false
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if w, ok := queenSees(crash.ID); !ok || w.State != api.StateExited || w.ExitCode == nil || *w.ExitCode != 3 {
			return fmt.Errorf("the queen lists %s as %+v (listed %v)", crash.ID, w.WorkerExit, ok)
		}
		return nil
	})
	if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+run.ID+"/record", nil); code != 409 || !strings.Contains(string(body), "stop it first") {
		t.Errorf("removing a running worker: %d %s", code, body)
	}
	if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+crash.ID+"/record", nil); code != 204 {
		t.Fatalf("rm %s: %d %s", crash.ID, code, body)
	}
	if code, _ := harness.Call(t, "GET", hive.URL+"/v1/workers/"+crash.ID, nil); code != 404 {
		t.Errorf("GET of a removed worker: %d", code)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if _, ok := queenSees(crash.ID); ok {
			return fmt.Errorf("the queen still lists the removed %s", crash.ID)
		}
		return nil
	})

	// Past the retention a record goes by itself; prune takes the rest.
	if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+run.ID, nil); code != 200 {
		t.Fatalf("stop %s: %d %s", run.ID, code, body)
	}
	stopped := hiveWorker(t, hive, run.ID)
	if stopped.State != api.StateExited || !stopped.Stopped {
		t.Fatalf("a stopped worker: state %s stopped %v", stopped.State, stopped.Stopped)
	}
	spawn(t, hive, "later", api.SpawnRequest{Args: []string{"--model", "m", "--exit-after", "2s"}})
	harness.WaitFor(t, 10*time.Second, func() error {
		if code, _ := harness.Call(t, "GET", hive.URL+"/v1/workers/"+run.ID, nil); code != 404 {
			return fmt.Errorf("%s still listed %v after its stop (retention 3s)", run.ID, time.Since(*stopped.ExitedAt).Round(time.Millisecond))
		}
		return nil
	})
	harness.WaitFor(t, 5*time.Second, func() error {
		if w := hiveWorker(t, hive, "llm-later"); w.State != api.StateExited {
			return fmt.Errorf("llm-later is %s", w.State)
		}
		return nil
	})
	code, body := harness.Call(t, "POST", hive.URL+"/v1/workers/prune", struct{}{})
	var p api.Pruned
	if code != 200 || json.Unmarshal(body, &p) != nil || len(p.Removed) != 1 || p.Removed[0] != "llm-later" {
		t.Fatalf("prune: %d %s", code, body)
	}
}
