//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// A second hive on a cgroup parent or a state directory another hive
// holds refuses to start, and leaves the first hive's workers, cgroups and
// kept requests alone (before, it adopted the workers, and a refused start
// removed the parent with their processes).
func TestSecondHiveRefused(t *testing.T) {
	harness.RequireCgroups(t)
	parent := harness.CgroupParent(t)
	state := t.TempDir()
	first := harness.StartHive(t, harness.HiveOptions{CgroupParent: parent, Env: []string{"RBEE_STATE_DIR=" + state}})
	w := spawn(t, first, "mine", api.SpawnRequest{Args: []string{"--model", "m"}})
	bin := harness.Build(t, "cmd/rbee-hive")
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"same cgroup parent", []string{"--cgroup-parent", parent, "--state-dir", t.TempDir()}, "another hive manages this cgroup parent"},
		{"same state dir", []string{"--cgroup-parent", harness.CgroupParent(t), "--state-dir", state}, "in use by another hive (pid " + strconv.Itoa(first.Pid())},
		// A start that would fail later (a bad --worker-bin-dir, whose
		// failure removes the parent the hive made) is refused first, so
		// it never removes a parent it does not hold.
		{"same parent, bad flag", []string{"--cgroup-parent", parent, "--state-dir", t.TempDir(), "--worker-bin-dir", "relative"}, "another hive manages this cgroup parent"},
	} {
		// One that is not refused would run: give it 20 s.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--listen", "127.0.0.1:0", "--gpu", "none", "--queen", ""}, tc.args...)...)
		cmd.Env = append(os.Environ(), "RBEE_TOKEN="+harness.Token)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.says) {
			t.Fatalf("%s: %v: %s; want a refusal naming %q", tc.name, err, out, tc.says)
		}
	}
	// The first hive still has its worker, alive, in its cgroup, with its
	// kept request.
	// (Ready after the hive's first pass, which a slow host may not have
	// made yet.)
	harness.WaitFor(t, 10*time.Second, func() error {
		got := hiveWorker(t, first, w.ID)
		if got.State != api.StateReady || got.PID != w.PID || syscall.Kill(w.PID, 0) != nil {
			return fmt.Errorf("the first hive's worker after the refused starts: %+v", got)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(state, "workers", w.ID+".json")); err != nil {
		t.Fatalf("the first hive's kept request: %v", err)
	}
}
