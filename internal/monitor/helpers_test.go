package monitor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func TestMain(m *testing.M) { harness.Main(m) }

// newMonitor returns a monitor on real cgroups below a parent of t's own,
// with every worker stopped and the subtree removed when t ends.
func newMonitor(t *testing.T) (*monitor.Monitor, cgroups.Config) {
	t.Helper()
	cfg := cgroups.Config{Parent: harness.CgroupParent(t)}
	p := monitor.DetectPlatform(cfg)
	if p.Cgroups == nil {
		t.Fatalf("cgroups unavailable: %s", p.NoCgroupsReason)
	}
	return startMonitor(t, monitor.Config{Platform: p, StopGrace: 2 * time.Second}), cfg
}

func startMonitor(t *testing.T, cfg monitor.Config) *monitor.Monitor {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := monitor.New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := m.StopAll(ctx); err != nil {
			t.Errorf("stop workers: %v", err)
		}
		m.Close()
	})
	return m
}

func spawn(t *testing.T, m *monitor.Monitor, spec api.SpawnRequest) api.Worker {
	t.Helper()
	if spec.Binary == "" {
		spec.Binary = harness.TestWorker(t)
	}
	if spec.Group == "" {
		spec.Group = "llm"
	}
	w, err := m.Spawn(context.Background(), spec)
	if err != nil {
		t.Fatalf("spawn %s: %v", spec.ID(), err)
	}
	return w
}

func find(recs []api.Worker, id string) (api.Worker, bool) {
	for _, r := range recs {
		if r.ID == id {
			return r, true
		}
	}
	return api.Worker{}, false
}

// passes runs n collection passes one interval apart (after one to prime
// the rates) and returns each worker's records by id. The interval is the
// measurement window of the rates, not a synchronisation wait.
func passes(t *testing.T, m *monitor.Monitor, n int, interval time.Duration) map[string][]api.Worker {
	t.Helper()
	m.Collect(context.Background())
	out := map[string][]api.Worker{}
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for range n {
		<-tk.C
		for _, r := range m.Collect(context.Background()) {
			out[r.ID] = append(out[r.ID], r)
		}
	}
	return out
}

// median of a float field over records; fails if any record lacks it.
func median(t *testing.T, recs []api.Worker, name string, field func(api.Worker) *float64) float64 {
	t.Helper()
	var vs []float64
	for _, r := range recs {
		v := field(r)
		if v == nil {
			t.Fatalf("%s of %s is null in a pass (errors %v)", name, r.ID, r.Errors)
		}
		vs = append(vs, *v)
	}
	if len(vs) == 0 {
		t.Fatalf("no samples of %s", name)
	}
	sort.Float64s(vs)
	return vs[len(vs)/2]
}

// counterRate is how fast a cumulative counter grew per second of the
// worker's uptime, from the first of recs to the last; it must never fall.
func counterRate(t *testing.T, recs []api.Worker, field func(api.Worker) *float64) float64 {
	t.Helper()
	if len(recs) < 2 {
		t.Fatalf("%d passes, need two", len(recs))
	}
	for i, r := range recs {
		if field(r) == nil || r.UptimeS == nil {
			t.Fatalf("counter or uptime of %s null in pass %d (errors %v)", r.ID, i, r.Errors)
		}
		if i > 0 && *field(r) < *field(recs[i-1]) {
			t.Fatalf("counter of %s fell from %v to %v", r.ID, *field(recs[i-1]), *field(r))
		}
	}
	first, last := recs[0], recs[len(recs)-1]
	return (*field(last) - *field(first)) / (*last.UptimeS - *first.UptimeS)
}

func within(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	t.Logf("%s: measured %.2f, ground truth %.2f (tolerance ±%.2f)", name, got, want, tol)
	if got < want-tol || got > want+tol {
		t.Errorf("%s = %.2f, want %.2f ± %.2f", name, got, want, tol)
	}
}

// inCgroup checks that pid's /proc/<pid>/cgroup names path (on v1 in at
// least the memory controller, on v2 the unified one).
func inCgroup(pid int, path string) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && (parts[1] == "memory" || parts[1] == "" && strings.HasSuffix(parts[2], path)) && strings.HasSuffix(parts[2], path) {
			return nil
		}
	}
	return fmt.Errorf("pid %d is not in %s:\n%s", pid, path, b)
}

// readyArgs returns test worker flags that make it create a file once its
// signal handlers and load are set up, and a function waiting for it.
// Signalling a Go worker earlier hits the runtime's default action.
func readyArgs(t *testing.T) ([]string, func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ready")
	return []string{"--ready-file", path}, func() {
		t.Helper()
		harness.WaitFor(t, 10*time.Second, func() error {
			_, err := os.Stat(path)
			return err
		})
	}
}
