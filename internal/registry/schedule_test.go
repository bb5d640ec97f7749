package registry

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// gpuHive is a heartbeat of a hive with n GPUs of 80 GiB, used[i] GiB in
// use on GPU i, and workers ws.
func gpuHive(id string, seq uint64, used []uint64, ws ...api.Worker) api.Heartbeat {
	h := hb(id, "s-"+id, seq, ws...)
	for i, u := range used {
		h.Node.GPUs = append(h.Node.GPUs, api.GPU{Index: i, UUID: fmt.Sprintf("GPU-%s-%d", id, i),
			VRAMTotalBytes: ptr(uint64(80 << 30)), VRAMUsedBytes: ptr(u << 30)})
	}
	return h
}

func ptr[T any](v T) *T { return &v }

func onGPU(w api.Worker, gpu int, vram uint64, sm float64) api.Worker {
	w.GPUs = append(w.GPUs, api.WorkerGPU{Index: gpu, VRAMBytes: ptr(vram), SMUtilPct: ptr(sm)})
	return w
}

func TestScheduleRoutesToBusyButUnsaturatedWorker(t *testing.T) {
	r, _, _ := newReg()
	// 51 % CPU of a 4-core hive, 60 % SM: busy, not idle, not saturated.
	busy := onGPU(wk("a", "qwen2.5", 10, 51, 60), 0, 10<<30, 60)
	mustIngest(t, r, gpuHive("h1", 1, []uint64{10, 0}, busy))
	d, err := r.Schedule(Request{Model: "qwen2.5", VRAMBytes: 16 << 30})
	if err != nil || d.Kind != "worker" || d.Worker.ID != "llm-a" || d.Load == nil || d.Load.Idle || d.Load.Saturated ||
		*d.Load.GPUUtilPct != 60 || *d.Load.CPUFraction != 0.128 || d.ReservationID != "" {
		t.Fatalf("Schedule = %+v %+v, %v", d, d.Load, err)
	}
	if !strings.Contains(d.Reason, "CPU 51.0% of 400%, GPU SM 60.0%") {
		t.Fatalf("reason %q", d.Reason)
	}
}

func TestScheduleSaturationIdleFirstAndRanking(t *testing.T) {
	r, _, _ := newReg()
	lim := func(w api.Worker, pct float64) api.Worker { w.CPULimitPct = &pct; return w }
	mustIngest(t, r, gpuHive("h1", 1, []uint64{40, 40, 40, 40},
		onGPU(wk("hot", "m", 10, 20, 95), 0, 20<<30, 95),     // GPU saturated (95 ≥ 90)
		lim(wk("cpu", "m", 11, 92, 0), 100),                  // CPU 92 % of its 100 % limit
		onGPU(wk("busy", "m", 12, 40, 50), 1, 20<<30, 50),    // busy
		onGPU(wk("idle", "m", 13, 2, 5), 2, 20<<30, 5),       // idle
		onGPU(wk("warm", "m", 14, 30, 20), 3, 20<<30, 20),    // busy, less than "busy"
		onGPU(wk("other", "other", 15, 1, 1), 3, 20<<30, 1))) // another model
	d, err := r.Schedule(Request{Model: "m", All: true})
	if err != nil || d.Worker.ID != "llm-idle" || !d.Load.Idle {
		t.Fatalf("Schedule = %+v, %v", d, err)
	}
	var order []string
	for _, w := range d.Ranked {
		order = append(order, w.ID)
	}
	if strings.Join(order, " ") != "llm-idle llm-warm llm-busy" {
		t.Fatalf("ranked %v, want idle first, then by load", order)
	}
	passed := strings.Join(d.PassedOver, "; ")
	for _, want := range []string{"llm-hot@h1 saturated (CPU 20.0% of 400%, GPU SM 95.0%)", "llm-cpu@h1 saturated (CPU 92.0% of 100%"} {
		if !strings.Contains(passed, want) {
			t.Errorf("passed over %q lacks %q", passed, want)
		}
	}
	// Every worker saturated: a placement, whose reason names them.
	r2, _, _ := newReg()
	mustIngest(t, r2, gpuHive("h1", 1, []uint64{70, 10}, onGPU(wk("hot", "m", 10, 20, 99), 0, 60<<30, 99)))
	d, err = r2.Schedule(Request{Model: "m", VRAMBytes: 16 << 30})
	if err != nil || d.Kind != "gpu" || d.GPU.Index != 1 || d.ReservationID == "" || !strings.Contains(d.Reason, "llm-hot@h1 saturated") {
		t.Fatalf("all saturated: %+v, %v", d, err)
	}
	// The threshold is the queen's to set.
	r3 := New(Config{SaturatedGPUPct: 99.5, HeartbeatRate: 1e6, HeartbeatBurst: 1e6})
	mustIngest(t, r3, gpuHive("h1", 1, []uint64{70}, onGPU(wk("hot", "m", 10, 20, 99), 0, 60<<30, 99)))
	if d, err := r3.Schedule(Request{Model: "m"}); err != nil || d.Kind != "worker" {
		t.Fatalf("with --saturated-gpu-pct 99.5, 99 %% SM is not saturated: %+v %v", d, err)
	}
}

// Twenty schedulers asking at once for 30 GiB: the reservations spread
// them over the GPUs that fit, never two on a GPU with room for one.
func TestReservationsPreventDoublePlacement(t *testing.T) {
	r, _, _ := newReg()
	// h1: GPU 0 has 50 GiB free, GPU 1 has 70; h2: GPU 0 has 35.
	mustIngest(t, r, gpuHive("h1", 1, []uint64{30, 10}))
	mustIngest(t, r, gpuHive("h2", 1, []uint64{45}))
	var mu sync.Mutex
	placed := map[string]int{}
	var refused int
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			d, err := r.Schedule(Request{Model: "big", VRAMBytes: 30 << 30})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !errors.Is(err, ErrNoPlacement) {
					t.Errorf("Schedule: %v", err)
				}
				refused++
				return
			}
			placed[fmt.Sprintf("%s/%d", d.HiveID, d.GPU.Index)]++
		})
	}
	wg.Wait()
	// Room for 30 GiB: h1/1 twice (70), h1/0 once (50), h2/0 once (35).
	if placed["h1/1"] != 2 || placed["h1/0"] != 1 || placed["h2/0"] != 1 || refused != 16 {
		t.Fatalf("placements %v, %d refused", placed, refused)
	}
	if n := len(r.Reservations()); n != 4 {
		t.Fatalf("%d reservations open, want 4", n)
	}
	_, err := r.Schedule(Request{Model: "big", VRAMBytes: 30 << 30})
	if err == nil || !strings.Contains(err.Error(), "reservations counted") || !strings.Contains(err.Error(), "h1 GPU 0 has 20.0GiB free, h2 GPU 0 has 5.0GiB free") {
		t.Fatalf("a 21st: %v", err)
	}
}

func TestReservationClaimReleaseExpiry(t *testing.T) {
	r, c, _ := newReg()
	old := onGPU(wk("old", "x", 10, 1, 1), 0, 10<<30, 1)
	mustIngest(t, r, gpuHive("h1", 1, []uint64{10}, old))
	d, err := r.Schedule(Request{Model: "m", VRAMBytes: 60 << 30})
	if err != nil || d.ReservationID == "" || d.ExpiresAt == nil || !d.ExpiresAt.Equal(c.now().Add(30*time.Second)) {
		t.Fatalf("placement %+v %v", d, err)
	}
	// 70 GiB free, 60 reserved: a second asker does not fit.
	if _, err := r.Schedule(Request{Model: "m", VRAMBytes: 20 << 30}); !errors.Is(err, ErrNoPlacement) {
		t.Fatalf("second placement: %v", err)
	}
	// A heartbeat in which the old worker still holds its VRAM claims
	// nothing; a new worker on the GPU claims the reservation.
	mustIngest(t, r, gpuHive("h1", 2, []uint64{10}, old))
	if len(r.Reservations()) != 1 {
		t.Fatal("a known worker claimed the reservation")
	}
	mustIngest(t, r, gpuHive("h1", 3, []uint64{30}, old, onGPU(wk("new", "m", 11, 50, 10), 0, 20<<30, 10)))
	if len(r.Reservations()) != 0 {
		t.Fatalf("the new worker did not claim the reservation: %+v", r.Reservations())
	}
	// One new worker claims one reservation: two placements, one worker
	// started, one reservation left.
	d1, _ := r.Schedule(Request{Model: "z", VRAMBytes: 10 << 30})
	d2, _ := r.Schedule(Request{Model: "z", VRAMBytes: 10 << 30})
	mustIngest(t, r, gpuHive("h1", 4, []uint64{40}, old, onGPU(wk("new", "m", 11, 50, 10), 0, 20<<30, 10),
		onGPU(wk("newer", "m", 12, 1, 1), 0, 10<<30, 1)))
	if left := r.Reservations(); len(left) != 1 || left[0].ID != d2.ReservationID {
		t.Fatalf("after one new worker: %+v, want only %s (%s was claimed)", left, d2.ReservationID, d1.ReservationID)
	}
	r.Release(d2.ReservationID)
	// Release and expiry.
	d, _ = r.Schedule(Request{Model: "z", VRAMBytes: 10 << 30})
	if err := r.Release(d.ReservationID); err != nil {
		t.Fatal(err)
	}
	if err := r.Release(d.ReservationID); !errors.Is(err, ErrNoReservation) || !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("second release: %v", err)
	}
	r.Schedule(Request{Model: "z", VRAMBytes: 10 << 30})
	c.add(31 * time.Second)
	r.Sweep()
	if n := len(r.Reservations()); n != 0 {
		t.Fatalf("%d reservations after their TTL", n)
	}
}

func TestMultiGPUPlacement(t *testing.T) {
	r, _, _ := newReg()
	mustIngest(t, r, gpuHive("h1", 1, []uint64{10, 70, 20, 30})) // free 70, 10, 60, 50
	mustIngest(t, r, gpuHive("h2", 1, []uint64{5}))              // one GPU only
	d, err := r.Schedule(Request{Model: "llama-70b", VRAMBytes: 100 << 30, GPUs: 2})
	if err != nil || d.HiveID != "h1" || len(d.GPUs) != 2 || d.GPUs[0].Index != 0 || d.GPUs[1].Index != 2 || *d.FreeVRAMBytes != 60<<30 {
		t.Fatalf("2-GPU placement %+v %v", d, err)
	}
	res := r.Reservations()
	if len(res) != 1 || res[0].BytesPerGPU != 50<<30 || len(res[0].GPUs) != 2 {
		t.Fatalf("reservation %+v", res)
	}
	// Three GPUs of 50 GiB: h1 has 70-50, 10, 60-50, 50 left.
	if _, err := r.Schedule(Request{Model: "llama-70b", VRAMBytes: 150 << 30, GPUs: 3}); !errors.Is(err, ErrNoPlacement) || !strings.Contains(err.Error(), "no online hive has 3 GPUs with 50.0GiB free each") {
		t.Fatalf("3-GPU placement: %v", err)
	}
}

// A reservation flood is bounded, and a hive's absurd numbers never win.
func TestScheduleHostile(t *testing.T) {
	r := New(Config{MaxReservations: 3, HeartbeatRate: 1e6, HeartbeatBurst: 1e6})
	mustIngest(t, r, gpuHive("h1", 1, []uint64{0}))
	for i := range 3 {
		if _, err := r.Schedule(Request{Model: "m", VRAMBytes: 1 << 20}); err != nil {
			t.Fatalf("reservation %d: %v", i, err)
		}
	}
	if _, err := r.Schedule(Request{Model: "m", VRAMBytes: 1 << 20}); !errors.Is(err, ErrTooManyReservations) || !errors.Is(err, api.ErrTooMany) {
		t.Fatalf("a fourth reservation: %v", err)
	}
	// A forged GPU of 2^64-1 bytes is nulled at ingest, a negative CPU drops
	// the worker: neither wins.
	r2, _, _ := newReg()
	forged := gpuHive("liar", 1, []uint64{0})
	forged.Node.GPUs[0].VRAMTotalBytes = ptr(uint64(1<<64 - 1))
	neg := wk("neg", "m", 10, 0, 0)
	neg.CPUPct = ptr(-1e308)
	forged.Workers = []api.WorkerReport{api.ReportOf(&neg, true)}
	if _, err := r2.Ingest(forged); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, r2, gpuHive("honest", 1, []uint64{60}, onGPU(wk("ok", "m", 20, 60, 60), 0, 10<<30, 60)))
	d, err := r2.Schedule(Request{Model: "m", VRAMBytes: 10 << 30})
	if err != nil || d.HiveID != "honest" {
		t.Fatalf("forged values won: %+v %v", d, err)
	}
}

// A placement asked without the right to reserve is answered, counting
// the open reservations, and reserves nothing; asking for more GPUs than
// any hive has says so.
func TestScheduleNoReserveAndTooManyGPUs(t *testing.T) {
	r, _, _ := newReg()
	mustIngest(t, r, gpuHive("h1", 1, []uint64{0, 0}))
	d, err := r.Schedule(Request{Model: "m", VRAMBytes: 10 << 30, NoReserve: true})
	if err != nil || d.ReservationID != "" || !strings.Contains(d.Reason, "not reserved") || len(r.Reservations()) != 0 {
		t.Fatalf("unreserved placement %+v %v", d, err)
	}
	if _, err := r.Schedule(Request{Model: "m", VRAMBytes: 10 << 30, GPUs: 3}); err == nil || !strings.Contains(err.Error(), "no online hive has 3 GPUs with known VRAM (the most on one is 2)") {
		t.Fatalf("3 GPUs of a 2-GPU fleet: %v", err)
	}
}
