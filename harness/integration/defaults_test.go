//go:build linux

package integration

import (
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
