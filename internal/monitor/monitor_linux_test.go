//go:build linux

package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/launch"
	"github.com/rbee-dev/rbee/internal/limits"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func TestSpawnCreatesCgroup(t *testing.T) {
	m, _ := newMonitor(t)
	w := spawn(t, m, api.SpawnRequest{Instance: "9301", Args: []string{"--model", "qwen2.5-0.5b"}})
	if w.ID != "llm-9301" || !w.LimitsEnforced {
		t.Fatalf("record %+v", w)
	}
	if !strings.HasSuffix(w.Cgroup, "/llm/9301") {
		t.Fatalf("cgroup %q, want .../llm/9301", w.Cgroup)
	}
	if err := inCgroup(w.PID, w.Cgroup); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cgroups.DefaultRoot, "memory", w.Cgroup)); err != nil {
		if _, err2 := os.Stat(filepath.Join(cgroups.DefaultRoot, w.Cgroup)); err2 != nil {
			t.Fatalf("cgroup directory missing: %v / %v", err, err2)
		}
	}
	// The cgroup is gone once the worker is stopped.
	if _, err := m.Stop(context.Background(), w.ID); err != nil {
		t.Fatal(err)
	}
	if err := inCgroup(w.PID, w.Cgroup); err == nil {
		t.Fatal("worker still alive in its cgroup after Stop")
	}
	for _, dir := range []string{filepath.Join(cgroups.DefaultRoot, "memory", w.Cgroup), filepath.Join(cgroups.DefaultRoot, w.Cgroup)} {
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("cgroup %s left behind", dir)
		}
	}
}

func TestSpawnReturnsValidPID(t *testing.T) {
	m, _ := newMonitor(t)
	bin := harness.TestWorker(t)
	w := spawn(t, m, api.SpawnRequest{Instance: "pid", Binary: bin, Args: []string{"--model", "x"}})
	if w.PID <= 0 {
		t.Fatalf("pid %d", w.PID)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", w.PID))
	if err != nil || exe != bin {
		t.Fatalf("pid %d runs %q (%v), want %q", w.PID, exe, err, bin)
	}
	recs := m.Collect(context.Background())
	r, _ := find(recs, w.ID)
	if r.PID != w.PID || !slices.Contains(r.PIDs, w.PID) || r.State != api.StateReady {
		t.Fatalf("collected %+v, want pid %d among pids and running", r, w.PID)
	}
}

func TestSpawnAppliesCPULimit(t *testing.T) {
	m, _ := newMonitor(t)
	w := spawn(t, m, api.SpawnRequest{Instance: "cpu20", Args: []string{"--cpu", "100"}, CPULimit: "20%"})
	if w.CPULimitPct == nil || *w.CPULimitPct != 20 {
		t.Fatalf("cpu_limit_pct %v, want 20", w.CPULimitPct)
	}
	quota := controllerFile(t, w.PID, "cpu", "cpu.cfs_quota_us", "cpu.max")
	b, err := os.ReadFile(quota)
	if err != nil || !strings.HasPrefix(string(b), "20000") {
		t.Fatalf("%s = %q (%v), want 20000", quota, b, err)
	}
	recs := passes(t, m, 4, time.Second)[w.ID]
	within(t, "cpu_pct of a worker burning 100% under a 20% limit", median(t, recs, "cpu_pct", cpuPct), 20, 6)
}

func TestSpawnAppliesMemoryLimit(t *testing.T) {
	m, _ := newMonitor(t)
	// Under the limit: the limit is in force and the worker lives.
	ok := spawn(t, m, api.SpawnRequest{Instance: "fits", Args: []string{"--mem", "16Mi"}, MemoryLimit: "64Mi"})
	if ok.MemLimitBytes == nil || *ok.MemLimitBytes != 64<<20 {
		t.Fatalf("mem_limit_bytes %v, want %d", ok.MemLimitBytes, 64<<20)
	}
	// Over the limit: the kernel OOM-kills it and the monitor says so.
	big := spawn(t, m, api.SpawnRequest{Instance: "oom", Args: []string{"--mem", "256Mi"}, MemoryLimit: "64Mi"})
	var final api.Worker
	harness.WaitFor(t, 10*time.Second, func() error {
		final, _ = m.Get(big.ID)
		if final.State != api.StateExited {
			return fmt.Errorf("worker allocating 256Mi under a 64Mi limit still %s", final.State)
		}
		return nil
	})
	if final.OOMKilled == nil || !*final.OOMKilled || final.Signal == nil || *final.Signal != "SIGKILL" {
		t.Fatalf("exited worker: oom_killed %v signal %v, want true and SIGKILL", deref(final.OOMKilled), deref(final.Signal))
	}
	r, _ := m.Get(ok.ID)
	if r.State == api.StateExited {
		t.Fatalf("worker under its limit exited: %+v", r)
	}
}

func TestCollectReadsCgroupStats(t *testing.T) {
	m, _ := newMonitor(t)
	dir := t.TempDir() // on disk: tmpfs would count no block I/O
	cpu := spawn(t, m, api.SpawnRequest{Instance: "cpu", Args: []string{"--cpu", "50"}})
	mem := spawn(t, m, api.SpawnRequest{Instance: "mem", Args: []string{"--mem", "200Mi"}})
	io := spawn(t, m, api.SpawnRequest{Instance: "io", Args: []string{"--io-write", "4Mi", "--io-dir", dir}})
	harness.WaitFor(t, 10*time.Second, func() error {
		r, _ := find(m.Collect(context.Background()), mem.ID)
		if r.MemRSSBytes == nil || *r.MemRSSBytes < 190<<20 {
			return fmt.Errorf("rss %v, waiting for 200Mi", deref(r.MemRSSBytes))
		}
		return nil
	})
	got := passes(t, m, 5, time.Second)
	within(t, "cpu_pct of a worker burning 50%", median(t, got[cpu.ID], "cpu_pct", cpuPct), 50, 15)
	rss := median(t, got[mem.ID], "mem_rss_bytes", func(r api.Worker) *float64 { return u2f(r.MemRSSBytes) })
	within(t, "mem_rss_bytes (MiB) of a worker holding 200Mi", rss/(1<<20), 200, 20)
	for _, r := range got[mem.ID] {
		if r.MemBytes == nil || r.MemWorkingSetBytes == nil || *r.MemBytes < *r.MemRSSBytes || *r.MemWorkingSetBytes > *r.MemBytes {
			t.Fatalf("memory fields inconsistent: usage %v rss %v working set %v", deref(r.MemBytes), deref(r.MemRSSBytes), deref(r.MemWorkingSetBytes))
		}
	}
	wr := median(t, got[io.ID], "io_write_bps", func(r api.Worker) *float64 { return r.IOWriteBps })
	within(t, "io_write_bps (MiB/s) of a worker writing 4Mi/s", wr/(1<<20), 4, 1.2)
	// The cumulative counters grow at the same rates.
	within(t, "rate of cpu_seconds (%) of a worker burning 50%", counterRate(t, got[cpu.ID], func(r api.Worker) *float64 { return r.CPUSeconds })*100, 50, 15)
	within(t, "rate of io_write_bytes (MiB/s) of a worker writing 4Mi/s",
		counterRate(t, got[io.ID], func(r api.Worker) *float64 { return u2f(r.IOWriteBytes) })/(1<<20), 4, 1.2)
	// The idle workers show a CPU near zero, not null.
	if c := median(t, got[mem.ID], "cpu_pct", cpuPct); c > 10 {
		t.Errorf("idle worker reads %.1f%% CPU", c)
	}
}

func TestCollectParsesCmdline(t *testing.T) {
	m, cfg := newMonitor(t)
	cases := map[string][]string{
		"sep":    {"--model", "qwen2.5-0.5b", "--port", "9301"},
		"eq":     {"--model=meta-llama/Llama-3.1-8B-Instruct"},
		"short":  {"-m", "mistral-7b"},
		"served": {"--model", "/models/x", "--served-model-name", "x-chat"},
		"none":   {"--port", "1"},
	}
	want := map[string]*string{
		"llm-sep": ptr("qwen2.5-0.5b"), "llm-eq": ptr("meta-llama/Llama-3.1-8B-Instruct"),
		"llm-short": ptr("mistral-7b"), "llm-served": ptr("x-chat"), "llm-none": nil,
	}
	for inst, args := range cases {
		spawn(t, m, api.SpawnRequest{Instance: inst, Args: args})
	}
	check := func(src string, recs []api.Worker) {
		t.Helper()
		for id, w := range want {
			r, ok := find(recs, id)
			if !ok {
				t.Fatalf("%s: %s missing", src, id)
			}
			if (w == nil) != (r.Model == nil) || w != nil && *w != *r.Model {
				t.Errorf("%s: %s model = %v, want %v", src, id, deref(r.Model), deref(w))
			}
		}
	}
	check("spawned", m.Collect(context.Background()))
	// A second monitor knows nothing of the spawns and must read each
	// model from the process's own /proc/<pid>/cmdline.
	other := startMonitor(t, monitor.Config{Platform: monitor.DetectPlatform(cfg)})
	if _, err := other.Adopt(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("adopted from /proc cmdline", other.Collect(context.Background()))
}

func TestCollectCalculatesUptime(t *testing.T) {
	m, _ := newMonitor(t)
	before := time.Now()
	w := spawn(t, m, api.SpawnRequest{Instance: "up"})
	if w.StartedAt == nil || w.StartedAt.Before(before.Add(-time.Second)) || w.StartedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("started_at %v, spawned at %v", w.StartedAt, before)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		r, _ := find(m.Collect(context.Background()), w.ID)
		if r.UptimeS == nil {
			return errors.New("uptime_s is null")
		}
		truth := time.Since(before).Seconds()
		if *r.UptimeS < 1.5 {
			return fmt.Errorf("uptime %.2f s, waiting for 1.5 s", *r.UptimeS)
		}
		// /proc start times have clock-tick resolution; allow 0.3 s.
		if *r.UptimeS > truth+0.3 || *r.UptimeS < truth-0.5 {
			t.Fatalf("uptime %.2f s, ground truth %.2f s", *r.UptimeS, truth)
		}
		return nil
	})
}

func TestCollectHandlesDeadProcess(t *testing.T) {
	m, _ := newMonitor(t)
	live := spawn(t, m, api.SpawnRequest{Instance: "live", Args: []string{"--mem", "8Mi"}})
	dead := spawn(t, m, api.SpawnRequest{Instance: "dead"})
	m.Collect(context.Background())
	if err := syscall.Kill(dead.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Passes racing the death: the live worker always reads whole; the
	// dead one reads either exited or with errors, never as healthy zeros.
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := m.Collect(context.Background())
		l, _ := find(recs, live.ID)
		if len(l.Errors) > 0 || l.MemBytes == nil || l.State != api.StateReady {
			t.Fatalf("live worker hurt by the dead one: %+v", l)
		}
		d, _ := find(recs, dead.ID)
		if d.State == api.StateExited {
			if d.Signal == nil || *d.Signal != "SIGKILL" || d.ExitCode != nil || d.OOMKilled == nil || *d.OOMKilled {
				t.Fatalf("dead worker: signal %v exit %v oom %v, want SIGKILL, none, false", deref(d.Signal), d.ExitCode, deref(d.OOMKilled))
			}
			if d.CPUPct != nil || d.MemBytes != nil {
				t.Fatalf("exited worker still reports measurements: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead worker still %s after 5 s", d.State)
		}
	}
	// Its cgroup goes right after the exit is announced (the exit is
	// news first).
	if err := inCgroup(live.PID, live.Cgroup); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cgroups.DefaultRoot, "memory", dead.Cgroup)
	if cgroups.Detect(cgroups.DefaultRoot) == cgroups.ModeV2 {
		dir = filepath.Join(cgroups.DefaultRoot, dead.Cgroup)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if _, err := os.Stat(dir); err == nil {
			return fmt.Errorf("cgroup of the dead worker left behind")
		}
		return nil
	})
}

func TestEnumerateWalksCgroupTree(t *testing.T) {
	m, cfg := newMonitor(t)
	a := spawn(t, m, api.SpawnRequest{Group: "llm", Instance: "a", Args: []string{"--model", "alpha"}, CPULimit: "150%", MemoryLimit: "512Mi"})
	b := spawn(t, m, api.SpawnRequest{Group: "embed", Instance: "b", Args: []string{"-m", "beta"}})
	// An empty worker cgroup, as a crashed hive could leave behind.
	cgm, err := cgroups.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := cgm.Create("llm/leftover", cgroups.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	empty.Close()

	// A new monitor on the same parent, as after a hive restart.
	other := startMonitor(t, monitor.Config{Platform: monitor.DetectPlatform(cfg), StopGrace: 2 * time.Second})
	ids, err := other.Adopt(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"embed-b", "llm-a"}) {
		t.Fatalf("adopted %v, want [embed-b llm-a]", ids)
	}
	rels, _ := cgm.List()
	if slices.Contains(rels, "llm/leftover") {
		t.Fatalf("empty cgroup not removed: %v", rels)
	}
	recs := other.Collect(context.Background())
	ra, _ := find(recs, a.ID)
	rb, _ := find(recs, b.ID)
	if ra.PID != a.PID || rb.PID != b.PID || deref(ra.Model) != "alpha" || deref(rb.Model) != "beta" {
		t.Fatalf("adopted records: %+v / %+v", ra, rb)
	}
	if ra.CPULimitPct == nil || *ra.CPULimitPct != 150 || ra.MemLimitBytes == nil || *ra.MemLimitBytes != 512<<20 || rb.CPULimitPct != nil {
		t.Fatalf("adopted limits: cpu %v mem %v; b cpu %v", deref(ra.CPULimitPct), deref(ra.MemLimitBytes), rb.CPULimitPct)
	}
	// The adopted worker's exit is noticed although it is not a child.
	if _, err := other.Stop(context.Background(), b.ID); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(b.PID, 0); err == nil {
		// It may linger as the first monitor's zombie until reaped.
		harness.WaitFor(t, 5*time.Second, func() error {
			r, _ := m.Get(b.ID)
			if r.State != api.StateExited {
				return fmt.Errorf("first monitor sees %s as %s", b.ID, r.State)
			}
			return nil
		})
	}
}

func TestSpawnInvalidBinary(t *testing.T) {
	m, cfg := newMonitor(t)
	dir := t.TempDir()
	noexec := filepath.Join(dir, "worker.txt")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		binary string
		want   error
		says   string
	}{
		{"missing", "/nonexistent/llm/worker", monitor.ErrBinary, "/nonexistent/llm/worker"},
		{"not executable", noexec, monitor.ErrBinary, "not executable"},
		{"directory", dir, monitor.ErrBinary, "not a regular file"},
		{"relative", "worker", monitor.ErrSpec, "absolute path"},
		{"empty", "", monitor.ErrSpec, "binary is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: "x", Binary: tc.binary, MemoryLimit: "64Mi"})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Spawn(%q) = %v, want %v saying %q", tc.binary, err, tc.want, tc.says)
			}
		})
	}
	assertNothingCreated(t, m, cfg)
}

func TestSpawnInvalidCPULimit(t *testing.T) {
	m, cfg := newMonitor(t)
	tests := []struct {
		name      string
		cpu, mem  string
		wantField string
	}{
		{"garbage cpu", "lots", "", "cpu_limit"},
		{"zero cpu", "0", "", "cpu_limit"},
		{"negative cpu", "-50%", "", "cpu_limit"},
		{"below kernel minimum", "0.1%", "", "cpu_limit"},
		{"zero memory", "", "0", "memory_limit"},
		{"bad memory suffix", "", "12Q", "memory_limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: "x", Binary: harness.TestWorker(t), CPULimit: tc.cpu, MemoryLimit: tc.mem})
			var le *limits.Error
			if !errors.As(err, &le) || le.Field != tc.wantField {
				t.Fatalf("Spawn = %v, want a limits error on %s", err, tc.wantField)
			}
		})
	}
	// Ids that would leave the subtree are refused before anything happens.
	for _, bad := range []api.SpawnRequest{{Group: "..", Instance: "x"}, {Group: "llm", Instance: "../../x"}, {Group: "a/b", Instance: "x"}} {
		bad.Binary = harness.TestWorker(t)
		if _, err := m.Spawn(context.Background(), bad); !errors.Is(err, monitor.ErrSpec) {
			t.Errorf("Spawn(%s/%s) = %v, want ErrSpec", bad.Group, bad.Instance, err)
		}
	}
	assertNothingCreated(t, m, cfg)
}

func assertNothingCreated(t *testing.T, m *monitor.Monitor, cfg cgroups.Config) {
	t.Helper()
	if ws := m.Workers(); len(ws) != 0 {
		t.Fatalf("failed spawns left records: %+v", ws)
	}
	cgm, err := cgroups.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rels, err := cgm.List(); err != nil || len(rels) != 0 {
		t.Fatalf("failed spawns left cgroups: %v (%v)", rels, err)
	}
}

func TestSpawnRefusesDuplicateAndStopEscalates(t *testing.T) {
	m, _ := newMonitor(t)
	ready, waitReady := readyArgs(t)
	w := spawn(t, m, api.SpawnRequest{Instance: "dup", Args: append([]string{"--ignore-term"}, ready...)})
	waitReady()
	if _, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: "dup", Binary: harness.TestWorker(t)}); !errors.Is(err, monitor.ErrExists) {
		t.Fatalf("duplicate spawn = %v, want ErrExists", err)
	}
	// The worker ignores SIGTERM: Stop must SIGKILL it after the grace.
	start := time.Now()
	r, err := m.Stop(context.Background(), w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Signal == nil || *r.Signal != "SIGKILL" || time.Since(start) < 2*time.Second {
		t.Fatalf("stop of a SIGTERM-ignoring worker: signal %v after %v", deref(r.Signal), time.Since(start))
	}
	// The exited record stays for the queen until forgotten.
	if g, err := m.Get(w.ID); err != nil || g.State != api.StateExited {
		t.Fatalf("record after Stop: %+v, %v", g, err)
	}
	if again, err := m.Stop(context.Background(), w.ID); err != nil || again.State != api.StateExited {
		t.Fatalf("second Stop = %+v, %v; want the exited record", again, err)
	}
	if !m.Forget(w.ID) {
		t.Fatal("Forget of an exited worker failed")
	}
	if _, err := m.Get(w.ID); !errors.Is(err, monitor.ErrNotFound) {
		t.Fatalf("record kept after Forget: %v", err)
	}
	if _, err := m.Stop(context.Background(), w.ID); !errors.Is(err, monitor.ErrNotFound) {
		t.Fatalf("Stop after Forget = %v, want ErrNotFound", err)
	}
}

func TestExitCodeAndChildrenCleanup(t *testing.T) {
	m, _ := newMonitor(t)
	w := spawn(t, m, api.SpawnRequest{Instance: "exit3", Args: []string{"--exit-after", "300ms", "--exit-code", "3"}})
	harness.WaitFor(t, 5*time.Second, func() error {
		r, _ := m.Get(w.ID)
		if r.State != api.StateExited {
			return fmt.Errorf("state %s", r.State)
		}
		if r.ExitCode == nil || *r.ExitCode != 3 || r.Signal != nil {
			t.Fatalf("exit code %v signal %v, want 3", r.ExitCode, deref(r.Signal))
		}
		return nil
	})
	// A worker whose main process dies leaves no child behind.
	p := spawn(t, m, api.SpawnRequest{Instance: "parent", Args: []string{"--children", "2"}})
	var pids []int
	harness.WaitFor(t, 5*time.Second, func() error {
		r, _ := find(m.Collect(context.Background()), p.ID)
		if len(r.PIDs) < 3 {
			return fmt.Errorf("pids %v, want 3", r.PIDs)
		}
		pids = r.PIDs
		return nil
	})
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		for _, pid := range pids {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
				return fmt.Errorf("pid %d of the dead worker still alive", pid)
			}
		}
		return nil
	})
}

// controllerFile returns the path of a file in pid's cgroup of the given
// v1 controller, or of the v2 file when the host is unified.
func controllerFile(t *testing.T, pid int, controller, v1File, v2File string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	v2 := cgroups.Detect(cgroups.DefaultRoot) == cgroups.ModeV2
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if v2 && parts[1] == "" {
			return filepath.Join(cgroups.DefaultRoot, parts[2], v2File)
		}
		if !v2 && slices.Contains(strings.Split(parts[1], ","), controller) {
			return filepath.Join(cgroups.DefaultRoot, controller, parts[2], v1File)
		}
	}
	t.Fatalf("pid %d has no %s cgroup:\n%s", pid, controller, b)
	return ""
}

func cpuPct(r api.Worker) *float64 { return r.CPUPct }

func u2f(v *uint64) *float64 {
	if v == nil {
		return nil
	}
	f := float64(*v)
	return &f
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestSpawnEnforcesBinDir(t *testing.T) {
	p := monitor.DetectPlatform(cgroups.Config{Parent: harness.CgroupParent(t)})
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(harness.TestWorker(t))
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "worker")
	if err := os.WriteFile(real, b, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "current")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	bd, err := launch.NewBinDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := startMonitor(t, monitor.Config{Platform: p, BinDir: bd, StopGrace: 2 * time.Second})
	w := spawn(t, m, api.SpawnRequest{Instance: "real", Binary: real})
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", w.PID)); err != nil || exe != real {
		t.Fatalf("the worker runs %q (%v), want %q", exe, err, real)
	}
	for _, tc := range []struct{ inst, bin, msg string }{
		{"linked", link, "symbolic link"},
		{"out", harness.TestWorker(t), "outside --worker-bin-dir"},
	} {
		_, err = m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: tc.inst, Binary: tc.bin})
		if !errors.Is(err, monitor.ErrForbidden) || !strings.Contains(err.Error(), tc.msg) {
			t.Fatalf("spawn of %s = %v, want ErrForbidden saying %q", tc.bin, err, tc.msg)
		}
		if _, err := m.Get("llm-" + tc.inst); !errors.Is(err, monitor.ErrNotFound) {
			t.Fatal("a refused spawn left a record")
		}
	}
}

// Loader variables never reach a worker: the spawn is refused, naming the
// variable, and nothing is created.
func TestSpawnRefusesLoaderEnv(t *testing.T) {
	m := startMonitor(t, monitor.Config{Platform: monitor.DetectPlatform(cgroups.Config{Parent: harness.CgroupParent(t)})})
	for _, k := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "BASH_ENV"} {
		_, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: "env", Binary: harness.TestWorker(t), Env: map[string]string{k: "./evil.so"}})
		if !errors.Is(err, monitor.ErrSpec) || !strings.Contains(err.Error(), k) {
			t.Fatalf("env %s: %v, want ErrSpec naming it", k, err)
		}
	}
	if ws := m.Workers(); len(ws) != 0 {
		t.Fatalf("refused spawns left %v", ws)
	}
}

// Workers run as the configured user with no capabilities, under a pids
// limit, and a limit changed behind the hive's back is reported.
func TestWorkerUserPidsAndLimitDrift(t *testing.T) {
	harness.RequireRoot(t)
	p := monitor.DetectPlatform(cgroups.Config{Parent: harness.CgroupParent(t)})
	if p.Cgroups == nil {
		t.Fatalf("cgroups: %s", p.NoCgroupsReason)
	}
	nobody, err := launch.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	m := startMonitor(t, monitor.Config{Platform: p, User: nobody, PidsMax: 64, StopGrace: 2 * time.Second})
	w := spawn(t, m, api.SpawnRequest{Instance: "user", Args: []string{"--model", "m"}, MemoryLimit: "64Mi"})
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.PID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), "Uid:\t65534\t65534\t65534\t65534") || !strings.Contains(string(st), "NoNewPrivs:\t1") ||
		!strings.Contains(string(st), "CapEff:\t0000000000000000") {
		t.Fatalf("worker status:\n%s", st)
	}
	rec := waitRecord(t, m, "llm-user", func(r api.Worker) error {
		if r.PidsLimit == nil || *r.PidsLimit != 64 || r.MemLimitBytes == nil || *r.MemLimitBytes != 64<<20 {
			return fmt.Errorf("limits %v %v", deref(r.PidsLimit), deref(r.MemLimitBytes))
		}
		return nil
	})
	if len(rec.Errors) != 0 {
		t.Fatalf("errors before any change: %v", rec.Errors)
	}
	// Raise the memory limit from outside the hive, as a root process
	// could: the next pass reports the new value and says it drifted.
	limFile := filepath.Join(cgroups.DefaultRoot, "memory", rec.Cgroup, "memory.limit_in_bytes")
	if p.Cgroups.Mode() == cgroups.ModeV2 {
		limFile = filepath.Join(cgroups.DefaultRoot, rec.Cgroup, "memory.max")
	}
	if p.Cgroups.Mode() != cgroups.ModeV2 {
		// memory plus swap is bounded too, and must stay at least memory.
		if err := os.WriteFile(filepath.Join(filepath.Dir(limFile), "memory.memsw.limit_in_bytes"), []byte("134217728"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(limFile, []byte("134217728"), 0); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, m, "llm-user", func(r api.Worker) error {
		if r.MemLimitBytes == nil || *r.MemLimitBytes != 128<<20 {
			return fmt.Errorf("mem limit %v, want the new 128 MiB", deref(r.MemLimitBytes))
		}
		if len(r.Errors) == 0 || !strings.Contains(r.Errors[0], "limits changed outside rbee: memory 134217728 bytes, set 67108864 bytes") {
			return fmt.Errorf("errors %v, want the drift", r.Errors)
		}
		return nil
	})
}

// waitRecord runs collection passes until check accepts the worker's record.
func waitRecord(t *testing.T, m *monitor.Monitor, id string, check func(api.Worker) error) api.Worker {
	t.Helper()
	var rec api.Worker
	harness.WaitFor(t, 10*time.Second, func() error {
		for _, r := range m.Collect(context.Background()) {
			if r.ID == id {
				rec = r
				return check(r)
			}
		}
		return fmt.Errorf("no %s", id)
	})
	return rec
}

// A stopped worker leaves no descriptor open: not its cgroup's files, not
// its tasks' /proc files, though no pass ran after the stop.
func TestStopLeavesNoDescriptors(t *testing.T) {
	m, cfg := newMonitor(t)
	w := spawn(t, m, api.SpawnRequest{Instance: "fds", Args: []string{"--children", "2"}})
	harness.WaitFor(t, 5*time.Second, func() error {
		if r, _ := find(m.Collect(context.Background()), w.ID); len(r.PIDs) < 3 {
			return fmt.Errorf("pids %v, want 3", r.PIDs)
		}
		return nil
	})
	m.Collect(context.Background())
	held := func() []string {
		var out []string
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			target, err := os.Readlink("/proc/self/fd/" + e.Name())
			if err == nil && (strings.Contains(target, cfg.Parent) || strings.HasPrefix(target, "/proc/") && !strings.HasPrefix(target, "/proc/self")) {
				out = append(out, target)
			}
		}
		return out
	}
	if len(held()) == 0 {
		t.Fatal("no descriptor held after a pass: the check below would prove nothing")
	}
	if _, err := m.Stop(context.Background(), w.ID); err != nil {
		t.Fatal(err)
	}
	if fds := held(); len(fds) > 0 {
		t.Fatalf("descriptors still open after the stop: %v", fds)
	}
}
