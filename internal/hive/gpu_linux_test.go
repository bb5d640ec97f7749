//go:build linux

package hive

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func newMonitor(t *testing.T, src monitor.GPUSource) *monitor.Monitor {
	t.Helper()
	p := monitor.DetectPlatform(cgroups.Config{Parent: harness.CgroupParent(t)})
	if p.Cgroups == nil {
		t.Fatalf("cgroups: %s", p.NoCgroupsReason)
	}
	m := monitor.New(monitor.Config{Platform: p, GPU: src, StopGrace: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := m.StopAll(ctx); err != nil {
			t.Error(err)
		}
		m.Close()
	})
	return m
}

func spawn(t *testing.T, m *monitor.Monitor, inst string, args ...string) api.Worker {
	t.Helper()
	w, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "llm", Instance: inst, Binary: harness.TestWorker(t), Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func byID(recs []api.Worker, id string) api.Worker {
	for _, r := range recs {
		if r.ID == id {
			return r
		}
	}
	return api.Worker{}
}

func ptr(v int) *int { return &v }

const gib = 1 << 30

func TestCollectQueriesNvidiaSmi(t *testing.T) {
	fake := harness.FakeNvidiaSMI(t, gpufake.Scenario{})
	s := gpu.NewSampler(&gpu.SMI{Path: fake.Path}, 2*time.Second)
	defer s.Close()
	m := newMonitor(t, GPUSource(s, true))
	a := spawn(t, m, "a", "--model", "alpha")
	b := spawn(t, m, "b", "--model", "beta", "--children", "1") // its child holds the GPU
	c := spawn(t, m, "c", "--model", "gamma")                   // spread over two GPUs
	var child int
	harness.WaitFor(t, 5*time.Second, func() error {
		r := byID(m.Collect(context.Background()), b.ID)
		for _, pid := range r.PIDs {
			if pid != b.PID {
				child = pid
				return nil
			}
		}
		return fmt.Errorf("worker b has no child yet: %v", r.PIDs)
	})
	h100 := func(i int, uuid string) gpufake.GPU {
		return gpufake.GPU{Index: i, UUID: uuid, Name: "NVIDIA H100 80GB HBM3", MemTotalMiB: 81559, MemUsedMiB: 20000, UtilPct: 60, TempC: 50, PowerW: 300}
	}
	fake.Set(gpufake.Scenario{
		GPUs: []gpufake.GPU{h100(0, "GPU-aaaaaaaa-0000-0000-0000-000000000000"), h100(1, "GPU-bbbbbbbb-0000-0000-0000-000000000000")},
		Procs: []gpufake.Proc{
			{PID: a.PID, GPU: 0, Name: "testworker", UsedMiB: 2048, SMPct: ptr(50)},
			{PID: child, GPU: 0, Name: "testworker", UsedMiB: 1024}, // idle: pmon prints "-"
			{PID: c.PID, GPU: 0, Name: "testworker", UsedMiB: 3072, SMPct: ptr(20)},
			{PID: c.PID, GPU: 1, Name: "testworker", UsedMiB: 4096, SMPct: ptr(30)},
			{PID: 4194000, GPU: 1, Name: "stranger", UsedMiB: 9999, SMPct: ptr(90)}, // not a worker
		},
	})
	before := len(fake.Invocations())
	const passes = 3
	var recs []api.Worker
	for range passes {
		recs = m.Collect(context.Background())
	}
	if n := len(fake.Invocations()) - before; n != 3*passes {
		t.Fatalf("%d nvidia-smi runs for %d passes over 3 workers, want 3 per pass", n, passes)
	}

	ra, rb, rc := byID(recs, a.ID), byID(recs, b.ID), byID(recs, c.ID)
	for _, r := range []api.Worker{ra, rb, rc} {
		if len(r.Errors) > 0 {
			t.Fatalf("%s errors: %v", r.ID, r.Errors)
		}
	}
	if len(ra.GPUs) != 1 || ra.GPUs[0].Index != 0 || *ra.VRAMBytes != 2*gib || *ra.GPUUtilPct != 50 || *ra.GPUs[0].SMUtilPct != 50 {
		t.Fatalf("worker a: gpus %+v vram %v util %v", ra.GPUs, ra.VRAMBytes, ra.GPUUtilPct)
	}
	// b's VRAM is held by its child; pmon has no SM value for it.
	if len(rb.GPUs) != 1 || *rb.VRAMBytes != gib || rb.GPUs[0].SMUtilPct != nil || *rb.GPUUtilPct != 0 {
		t.Fatalf("worker b: gpus %+v vram %v util %v", rb.GPUs, rb.VRAMBytes, rb.GPUUtilPct)
	}
	if len(rc.GPUs) != 2 || rc.GPUs[0].UUID != "GPU-aaaaaaaa-0000-0000-0000-000000000000" || rc.GPUs[1].Index != 1 ||
		*rc.GPUs[1].VRAMBytes != 4*gib || *rc.VRAMBytes != 7*gib || *rc.GPUUtilPct != 50 {
		t.Fatalf("worker c: gpus %+v vram %v util %v", rc.GPUs, rc.VRAMBytes, rc.GPUUtilPct)
	}
	snap, _, err := s.Last()
	if err != nil || len(snap.Devices) != 2 || *snap.Devices[1].VRAMTotalBytes != 81559<<20 {
		t.Fatalf("host view %+v %v", snap.Devices, err)
	}
}

func TestCollectHandlesMissingGPU(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no nvidia-smi anywhere
	backend, why, err := gpu.Open(gpu.ModeAuto, "")
	if err != nil {
		t.Fatal(err)
	}
	if backend.Name() != "none" || !strings.Contains(why, "NVML unavailable") || !strings.Contains(why, "nvidia-smi not found") {
		t.Fatalf("backend %s (%s), want none with both reasons", backend.Name(), why)
	}
	s := gpu.NewSampler(backend, 0)
	defer s.Close()
	m := newMonitor(t, GPUSource(s, true))
	w := spawn(t, m, "nogpu", "--model", "tiny")
	r := byID(m.Collect(context.Background()), w.ID)
	if r.State != api.StateReady || len(r.Errors) != 0 || r.MemBytes == nil {
		t.Fatalf("pass without a GPU: %+v", r)
	}
	if r.GPUs != nil || r.VRAMBytes != nil || r.GPUUtilPct != nil {
		t.Fatalf("GPU fields must be null without a backend: gpus %v vram %v util %v", r.GPUs, r.VRAMBytes, r.GPUUtilPct)
	}
	for _, mode := range []string{gpu.ModeNVML, gpu.ModeNvidiaSMI, "cuda"} {
		if _, _, err := gpu.Open(mode, ""); err == nil {
			t.Errorf("Open(%q) succeeded on a host without GPUs", mode)
		}
	}
}

func TestCollectNvidiaSmiHang(t *testing.T) {
	fake := harness.FakeNvidiaSMI(t, gpufake.H200Busy())
	const deadline = 500 * time.Millisecond
	s := gpu.NewSampler(&gpu.SMI{Path: fake.Path}, deadline)
	defer s.Close()
	m := newMonitor(t, GPUSource(s, true))
	w := spawn(t, m, "hang")
	sc := gpufake.H200Busy()
	sc.Procs[0].PID = w.PID
	sc.Hang, sc.HangChild = true, true
	fake.Set(sc)
	for i := range 2 {
		start := time.Now()
		r := byID(m.Collect(context.Background()), w.ID)
		if took := time.Since(start); took > deadline+300*time.Millisecond {
			t.Fatalf("pass %d took %v with a %v GPU deadline", i, took, deadline)
		}
		if r.VRAMBytes != nil || r.GPUUtilPct != nil || r.GPUs != nil {
			t.Fatalf("pass %d: GPU fields must be null while nvidia-smi hangs: %+v", i, r)
		}
		if !slices.ContainsFunc(r.Errors, func(e string) bool { return e == "gpu: nvidia-smi timed out after 500ms" }) {
			t.Fatalf("pass %d errors %q, want \"gpu: nvidia-smi timed out after 500ms\"", i, r.Errors)
		}
		if r.MemBytes == nil || r.State != api.StateReady {
			t.Fatalf("pass %d: the rest of the record must survive: %+v", i, r)
		}
	}
	harness.WaitFor(t, 2*time.Second, func() error {
		if pids := fake.Running(); len(pids) > 0 {
			return fmt.Errorf("hung nvidia-smi processes accumulate: %v", pids)
		}
		return nil
	})
	sc.Hang = false
	fake.Set(sc)
	r := byID(m.Collect(context.Background()), w.ID)
	if len(r.Errors) != 0 || r.VRAMBytes == nil || *r.VRAMBytes != 3786<<20 || *r.GPUUtilPct != 99 {
		t.Fatalf("after recovery: errors %v vram %v util %v", r.Errors, r.VRAMBytes, r.GPUUtilPct)
	}
}
