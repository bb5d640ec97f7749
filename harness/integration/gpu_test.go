//go:build linux

package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/hive"
	"github.com/rbee-dev/rbee/internal/monitor"
)

// switchSource lets one monitor be measured through several backends.
type switchSource struct {
	mu  sync.Mutex
	src monitor.GPUSource
}

func (s *switchSource) set(src monitor.GPUSource) { s.mu.Lock(); s.src = src; s.mu.Unlock() }
func (s *switchSource) GPUUsage(ctx context.Context) (monitor.GPUUsage, error) {
	s.mu.Lock()
	src := s.src
	s.mu.Unlock()
	if src == nil {
		return monitor.GPUUsage{}, fmt.Errorf("no backend")
	}
	return src.GPUUsage(ctx)
}

// TestGPUAcceptance is the GPU acceptance check (go tool mage gpu:check,
// or the gpu:bundle on a machine without Go): two real CUDA workers spawned
// through the hive's spawn path, measured through NVML and nvidia-smi, and
// printed beside nvidia-smi's own view. It needs an NVIDIA GPU and python3
// with PyTorch, and skips saying so without them.
func TestGPUAcceptance(t *testing.T) {
	smi, err := exec.LookPath("nvidia-smi")
	if err != nil {
		t.Skip("needs an NVIDIA GPU: nvidia-smi is not on PATH")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 with PyTorch")
	}
	if out, err := exec.Command(python, "-c", "import torch; assert torch.cuda.is_available()").CombinedOutput(); err != nil {
		t.Skipf("needs PyTorch with CUDA: %v: %s", err, out)
	}
	script := cudaWorkerScript(t)

	var p monitor.Platform
	if cgroups.Detect(cgroups.DefaultRoot) != cgroups.ModeNone && os.Geteuid() == 0 {
		p = monitor.DetectPlatform(cgroups.Config{Parent: harness.CgroupParent(t)})
	} else {
		p = monitor.DetectPlatform(cgroups.Config{Root: t.TempDir(), Mode: cgroups.ModeNone})
	}
	t.Logf("cgroups: mode %s, limits enforced %v %s", cgroups.Detect(cgroups.DefaultRoot), p.Cgroups != nil, p.NoCgroupsReason)
	src := &switchSource{}
	m := monitor.New(monitor.Config{Platform: p, GPU: src, StopGrace: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer m.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.StopAll(ctx); err != nil {
			t.Error(err)
		}
	}()
	busy, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: "9301", Binary: python,
		Args: []string{script, "--model", "meta-llama/Llama-3.1-8B-Instruct", "--port", "9301", "--vram-gib", "4", "--busy", "--child"}, MemoryLimit: "16Gi"})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: "9302", Binary: python,
		Args: []string{script, "--model", "Qwen/Qwen2.5-0.5B", "--port", "9302", "--vram-gib", "1.5"}, MemoryLimit: "16Gi"})
	if err != nil {
		t.Fatal(err)
	}

	// Ground truth: nvidia-smi's own per-pid VRAM, summed over each
	// worker's pids, once both have allocated.
	truth := map[string]uint64{}
	harness.WaitFor(t, 90*time.Second, func() error {
		byPid, err := smiApps(smi)
		if err != nil {
			return err
		}
		for _, r := range m.Collect(context.Background()) {
			var sum uint64
			for _, pid := range r.PIDs {
				sum += byPid[pid]
			}
			truth[r.ID] = sum
		}
		if truth[busy.ID] < 4<<30 || truth[idle.ID] < 1<<30 {
			return fmt.Errorf("workers still allocating: nvidia-smi shows %v", truth)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // let SM utilisation samples accumulate over the busy loop

	type result struct {
		backend string
		recs    map[string]api.Worker
		median  time.Duration
		err     string
	}
	var results []result
	backends := []struct {
		name string
		open func() (gpu.Backend, error)
	}{
		{"nvml", func() (gpu.Backend, error) { return gpu.OpenNVML() }},
		{"nvidia-smi", func() (gpu.Backend, error) { return &gpu.SMI{Path: smi}, nil }},
	}
	for _, b := range backends {
		be, err := b.open()
		if err != nil {
			results = append(results, result{backend: b.name, err: err.Error()})
			continue
		}
		s := gpu.NewSampler(be, gpu.DefaultTimeout)
		src.set(hive.GPUSource(s, true))
		var times []time.Duration
		recs := map[string]api.Worker{}
		for range 6 {
			start := time.Now()
			for _, r := range m.Collect(context.Background()) {
				recs[r.ID] = r
			}
			times = append(times, time.Since(start))
			time.Sleep(500 * time.Millisecond)
		}
		s.Close()
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		results = append(results, result{backend: b.name, recs: recs, median: times[len(times)/2]})
	}

	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "worker\tmodel\tpids\tbackend\tvram MiB\tnvidia-smi vram MiB\tsm %\tgpu_util %\tpass (median of 6)\terrors")
	for _, res := range results {
		if res.err != "" {
			fmt.Fprintf(tw, "-\t-\t-\t%s\tunavailable: %s\t\t\t\t\t\n", res.backend, res.err)
			continue
		}
		for _, id := range []string{busy.ID, idle.ID} {
			r := res.recs[id]
			var sms []string
			for _, g := range r.GPUs {
				sms = append(sms, fmtF(g.SMUtilPct))
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%d\t%s\t%s\t%v\t%v\n", id, deref(r.Model), r.PIDs, res.backend,
				fmtU(r.VRAMBytes), truth[id]>>20, strings.Join(sms, ","), fmtF(r.GPUUtilPct), res.median.Round(time.Microsecond), r.Errors)
		}
	}
	tw.Flush()
	table, _ := exec.Command(smi).CombinedOutput()
	t.Logf("GPU acceptance\n%s\nnvidia-smi:\n%s", sb.String(), table)

	for _, res := range results {
		if res.err != "" {
			if res.backend == "nvidia-smi" {
				t.Errorf("nvidia-smi backend unavailable: %s", res.err)
			}
			continue
		}
		for _, id := range []string{busy.ID, idle.ID} {
			r := res.recs[id]
			if r.VRAMBytes == nil || len(r.Errors) > 0 {
				t.Errorf("%s: %s has no VRAM reading (errors %v)", res.backend, id, r.Errors)
				continue
			}
			if got, want := float64(*r.VRAMBytes), float64(truth[id]); got < want*0.9 || got > want*1.1 {
				t.Errorf("%s: %s VRAM %d MiB, nvidia-smi says %d MiB", res.backend, id, uint64(got)>>20, uint64(want)>>20)
			}
		}
		if u := res.recs[busy.ID].GPUUtilPct; u == nil || *u < 50 {
			t.Errorf("%s: the busy worker's gpu_util_pct is %s, want >= 50", res.backend, fmtF(u))
		}
		if u := res.recs[idle.ID].GPUUtilPct; u == nil || *u > 10 {
			t.Errorf("%s: the idle worker's gpu_util_pct is %s, want <= 10", res.backend, fmtF(u))
		}
	}
}

// smiApps asks nvidia-smi for VRAM per pid, independently of rbee's parser.
func smiApps(smi string) (map[int]uint64, error) {
	out, err := exec.Command(smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil, err
	}
	m := map[int]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 2 {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(f[0]))
		mib, _ := strconv.ParseUint(strings.TrimSpace(f[1]), 10, 64)
		m[pid] += mib << 20
	}
	return m, nil
}

// cudaWorkerScript finds harness/cudaworker/worker.py from the package
// directory (go test) or next to a bundled test binary (gpu:bundle).
func cudaWorkerScript(t *testing.T) string {
	t.Helper()
	candidates := []string{filepath.Join("..", "cudaworker", "worker.py")}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "worker.py"))
	}
	if i := slices.IndexFunc(candidates, func(p string) bool { _, err := os.Stat(p); return err == nil }); i >= 0 {
		abs, _ := filepath.Abs(candidates[i])
		return abs
	}
	t.Fatalf("worker.py not found in %v", candidates)
	return ""
}

func fmtF(v *float64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

func fmtU(v *uint64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatUint(*v>>20, 10)
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}
