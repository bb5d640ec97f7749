//go:build linux

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/api"
)

func h100(i int, uuid string, usedMiB int) gpufake.GPU {
	return gpufake.GPU{Index: i, UUID: uuid, Name: "NVIDIA H100 80GB HBM3", MemTotalMiB: 81559, MemUsedMiB: usedMiB, UtilPct: 10, TempC: 40, PowerW: 200}
}

func ptr(v int) *int { return &v }

// Several hives with fake GPUs of different free VRAM, workers of
// different models and loads; every query answers what it should and a
// stale hive's workers are left out.
func TestSchedulingQueries(t *testing.T) {
	queen := harness.StartQueen(t)
	fakes := map[string]*harness.FakeSMI{}
	hives := map[string]*harness.Daemon{}
	for _, name := range []string{"h1", "h2", "h3"} {
		fakes[name] = harness.FakeNvidiaSMI(t, gpufake.Scenario{})
		hives[name] = harness.StartHive(t, harness.HiveOptions{ID: name, Queen: queen.URL,
			Args: []string{"--interval", "300ms", "--gpu", "nvidia-smi", "--nvidia-smi", fakes[name].Path}})
	}
	busy := spawn(t, hives["h1"], "a", api.SpawnRequest{Args: []string{"--model", "llama", "--cpu", "60"}})
	qwen := spawn(t, hives["h1"], "b", api.SpawnRequest{Args: []string{"--model", "qwen"}})
	idle := spawn(t, hives["h2"], "c", api.SpawnRequest{Args: []string{"--model", "llama"}})
	staleW := spawn(t, hives["h3"], "d", api.SpawnRequest{Args: []string{"--model", "mistral"}})
	_ = qwen
	fakes["h1"].Set(gpufake.Scenario{GPUs: []gpufake.GPU{h100(0, "GPU-11111111-0000-0000-0000-000000000000", 72000)},
		Procs: []gpufake.Proc{{PID: busy.PID, GPU: 0, Name: "testworker", UsedMiB: 60000, SMPct: ptr(90)}}})
	fakes["h2"].Set(gpufake.Scenario{GPUs: []gpufake.GPU{h100(0, "GPU-22222222-0000-0000-0000-000000000000", 30000), h100(1, "GPU-22222222-1111-0000-0000-000000000000", 4000)},
		Procs: []gpufake.Proc{{PID: idle.PID, GPU: 0, Name: "testworker", UsedMiB: 20000, SMPct: ptr(3)}}})
	fakes["h3"].Set(gpufake.Scenario{GPUs: []gpufake.GPU{h100(0, "GPU-33333333-0000-0000-0000-000000000000", 0)},
		Procs: []gpufake.Proc{{PID: staleW.PID, GPU: 0, Name: "testworker", UsedMiB: 1000}}})

	// Wait until the queen has every hive's GPUs and every worker's loads.
	harness.WaitFor(t, 20*time.Second, func() error {
		ws := queenWorkers(t, queen, "")
		if len(ws) != 4 {
			return fmt.Errorf("%d workers", len(ws))
		}
		for _, w := range ws {
			if w.CPUPct == nil || w.GPUUtilPct == nil {
				return fmt.Errorf("%s not measured yet", w.ID)
			}
			if w.ID == busy.ID && (*w.CPUPct < 30 || *w.GPUUtilPct != 90) {
				return fmt.Errorf("busy worker reads cpu %.0f gpu %.0f", *w.CPUPct, *w.GPUUtilPct)
			}
		}
		return nil
	})

	// Freeze h3: its heartbeats stop, and after 3 intervals it is stale.
	h3 := hives["h3"]
	if err := syscall.Kill(h3.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(h3.Pid(), syscall.SIGCONT) })
	harness.WaitFor(t, 5*time.Second, func() error {
		var h api.Hive
		harness.Get(t, queen.URL+"/v1/hives/h3", &h)
		if h.State != api.HiveStateStale {
			return errors.New("h3 not stale yet")
		}
		return nil
	})

	var d api.Decision
	harness.Get(t, queen.URL+"/v1/schedule?model=llama", &d)
	if d.Kind != "worker" || d.Worker.ID != idle.ID || d.HiveID != "h2" {
		t.Errorf("schedule llama = %+v, want the idle worker on h2, not the busy one on h1", d)
	}
	harness.Get(t, queen.URL+"/v1/schedule?model=qwen", &d)
	if d.Kind != "worker" || d.HiveID != "h1" {
		t.Errorf("schedule qwen = %+v, want the qwen worker on h1", d)
	}
	// mistral is served only on the stale h3: capacity decides, among
	// online hives only (h3's empty GPU does not count).
	harness.Get(t, queen.URL+"/v1/schedule?model=mistral&vram_bytes=40Gi", &d)
	if d.Kind != "gpu" || d.HiveID != "h2" || d.GPU.Index != 1 {
		t.Errorf("schedule mistral 40Gi = %+v, want h2 GPU 1 (the most free VRAM on an online hive)", d)
	}
	code, body := harness.Call(t, "GET", queen.URL+"/v1/schedule?model=mistral&vram_bytes=79Gi", nil)
	if code != 404 || !strings.Contains(string(body), "llm-d@h3 on a stale hive") {
		t.Errorf("schedule mistral 79Gi: %d %s, want 404 naming the stale worker", code, body)
	}
	if ws := queenWorkers(t, queen, "?model=llama&idle=true"); len(ws) != 1 || ws[0].ID != idle.ID {
		t.Errorf("idle llama workers %+v", ws)
	}
	if ws := queenWorkers(t, queen, "?hive=h3"); len(ws) != 1 || !ws[0].Stale {
		t.Errorf("h3 workers %+v, want d listed and marked stale", ws)
	}
	if err := syscall.Kill(h3.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// schedule asks queen and returns the status and the decision.
func schedule(t *testing.T, queen, query string) (int, api.Decision, string) {
	t.Helper()
	code, body := harness.Call(t, "GET", queen+"/v1/schedule?"+query, nil)
	var d api.Decision
	if code == 200 {
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("schedule %s: %v %s", query, err, body)
		}
	}
	return code, d, string(body)
}

func reservations(t *testing.T, queen string) []api.Reservation {
	t.Helper()
	var rs []api.Reservation
	harness.Get(t, queen+"/v1/reservations", &rs)
	return rs
}

// A real hive with fake GPUs: a busy worker below saturation takes the
// request; saturated, a placement is answered and reserved; twenty
// schedulers at once never share room meant for one; a worker started on
// the GPU claims its reservation; a split model gets two GPUs; an
// unclaimed reservation expires.
func TestScheduleRoutingAndReservations(t *testing.T) {
	queen := harness.StartQueen(t, "--reservation-ttl", "3s")
	fake := harness.FakeNvidiaSMI(t, gpufake.Scenario{})
	hive := harness.StartHive(t, harness.HiveOptions{ID: "h1", Queen: queen.URL,
		Args: []string{"--interval", "300ms", "--gpu", "nvidia-smi", "--nvidia-smi", fake.Path}})
	a := spawn(t, hive, "a", api.SpawnRequest{Args: []string{"--model", "qwen2.5", "--cpu", "40"}})
	gpus := func(used0, used1 int) []gpufake.GPU {
		return []gpufake.GPU{h100(0, "GPU-aaaaaaaa-0000-0000-0000-000000000000", used0), h100(1, "GPU-aaaaaaaa-1111-0000-0000-000000000000", used1)}
	}
	setSM := func(sm int, extra ...gpufake.Proc) {
		fake.Set(gpufake.Scenario{GPUs: gpus(20000, 0), Procs: append([]gpufake.Proc{{PID: a.PID, GPU: 0, Name: "testworker", UsedMiB: 20000, SMPct: ptr(sm)}}, extra...)})
		harness.WaitFor(t, 10*time.Second, func() error {
			ws := queenWorkers(t, queen, "?model=qwen2.5")
			if len(ws) != 1 || ws[0].CPUPct == nil || ws[0].GPUUtilPct == nil || *ws[0].GPUUtilPct != float64(sm) {
				return fmt.Errorf("worker at the queen: %+v", ws)
			}
			return nil
		})
	}
	setSM(60)
	// Busy (40 % CPU, 60 % SM), not saturated: it takes the request, even
	// though a placement would fit.
	code, d, body := schedule(t, queen.URL, "model=qwen2.5&vram_bytes=16Gi")
	if code != 200 || d.Kind != "worker" || d.Worker.ID != a.ID || d.Load == nil || d.Load.Idle || d.Load.Saturated || d.ReservationID != "" {
		t.Fatalf("busy worker: %d %s", code, body)
	}
	// Saturated: a placement, on the emptier GPU, reserved.
	setSM(95)
	code, d, body = schedule(t, queen.URL, "model=qwen2.5&vram_bytes=30Gi")
	if code != 200 || d.Kind != "gpu" || d.GPU.Index != 1 || d.ReservationID == "" || d.ExpiresAt == nil ||
		len(d.PassedOver) != 1 || !strings.Contains(d.PassedOver[0], "llm-a@h1 saturated") {
		t.Fatalf("saturated worker: %d %s", code, body)
	}
	first := d.ReservationID
	// Twenty at once, 30 GiB each: GPU 0 has 60.1 GiB free (two fit),
	// GPU 1 79.6 less the 30 reserved (one fits): three placements.
	type answer struct {
		code int
		gpu  int
		id   string
	}
	answers := make(chan answer, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			code, d, _ := schedule(t, queen.URL, "model=big&vram_bytes=30Gi")
			a := answer{code: code, gpu: -1}
			if code == 200 {
				a.gpu, a.id = d.GPU.Index, d.ReservationID
			}
			answers <- a
		})
	}
	wg.Wait()
	close(answers)
	perGPU := map[int]int{}
	for a := range answers {
		if a.code != 200 && a.code != 404 {
			t.Fatalf("schedule under load: %d", a.code)
		}
		if a.code == 200 {
			perGPU[a.gpu]++
		}
	}
	if perGPU[0] != 2 || perGPU[1] != 1 {
		t.Fatalf("20 concurrent placements of 30 GiB: %v per GPU, want 2 on GPU 0 and 1 on GPU 1", perGPU)
	}
	if n := len(reservations(t, queen.URL)); n != 4 {
		t.Fatalf("%d reservations open, want 4", n)
	}
	// A worker started on GPU 1 claims the oldest reservation there.
	b := spawn(t, hive, "b", api.SpawnRequest{Args: []string{"--model", "qwen2.5"}})
	fake.Set(gpufake.Scenario{GPUs: gpus(20000, 30000), Procs: []gpufake.Proc{
		{PID: a.PID, GPU: 0, Name: "testworker", UsedMiB: 20000, SMPct: ptr(95)}, {PID: b.PID, GPU: 1, Name: "testworker", UsedMiB: 30000, SMPct: ptr(5)}}})
	harness.WaitFor(t, 10*time.Second, func() error {
		for _, r := range reservations(t, queen.URL) {
			if r.ID == first {
				return fmt.Errorf("%s still open after a new worker took GPU 1", first)
			}
		}
		return nil
	})
	if n := len(reservations(t, queen.URL)); n != 3 {
		t.Fatalf("%d reservations open after one was claimed, want 3", n)
	}
	// Split over two GPUs: none has room now (the reservations count).
	code, _, body = schedule(t, queen.URL, "model=llama-70b&vram_bytes=100Gi&gpus=2")
	if code != 404 || !strings.Contains(body, "no online hive has 2 GPUs with 50.0GiB free each") {
		t.Fatalf("2-GPU placement with the GPUs reserved: %d %s", code, body)
	}
	// The reservations expire (--reservation-ttl 3s): now it fits.
	harness.WaitFor(t, 10*time.Second, func() error {
		if n := len(reservations(t, queen.URL)); n != 0 {
			return fmt.Errorf("%d reservations open", n)
		}
		return nil
	})
	code, d, body = schedule(t, queen.URL, "model=llama-70b&vram_bytes=100Gi&gpus=2")
	if code != 200 || len(d.GPUs) != 2 || d.ReservationID == "" {
		t.Fatalf("2-GPU placement: %d %s", code, body)
	}
	if code, _ := harness.Call(t, "DELETE", queen.URL+"/v1/reservations/"+d.ReservationID, nil); code != 204 {
		t.Fatalf("release: %d", code)
	}
	if code, body := harness.Call(t, "DELETE", queen.URL+"/v1/reservations/"+d.ReservationID, nil); code != 404 {
		t.Fatalf("second release: %d %s", code, body)
	}
	for _, bad := range []string{"model=x&gpus=0", "model=x&gpus=65", "model=x&vram=16Gi", "model=x&all=maybe", "model=x&model=y"} {
		if code, _, body := schedule(t, queen.URL, bad); code != 400 {
			t.Errorf("schedule?%s: %d %s, want 400", bad, code, body)
		}
	}
}

// Two queens, one hive reporting to both. Each queen reserves on its own:
// asked at once, both place on the same GPU. The hive's next heartbeat,
// once the first scheduler's worker runs there, ends both reservations
// and shows both queens the VRAM in use: the second scheduler, asking
// again (or releasing its reservation_id), is sent elsewhere or told
// nothing fits.
func TestTwoQueensPlacementCollision(t *testing.T) {
	qa, qb := harness.StartQueen(t), harness.StartQueen(t)
	fake := harness.FakeNvidiaSMI(t, gpufake.Scenario{GPUs: []gpufake.GPU{h100(0, "GPU-cccccccc-0000-0000-0000-000000000000", 0)}})
	hive := harness.StartHive(t, harness.HiveOptions{ID: "h1", Queen: qa.URL,
		Args: []string{"--queen", qb.URL, "--interval", "300ms", "--gpu", "nvidia-smi", "--nvidia-smi", fake.Path}})
	for _, q := range []*harness.Daemon{qa, qb} {
		harness.WaitFor(t, 10*time.Second, func() error {
			var h api.Hive
			if err := (harness.Client{}).Get(q.URL+"/v1/hives/h1", &h); err != nil || len(h.Node.GPUs) != 1 {
				return fmt.Errorf("%s: hive %+v %v", q.Name, h, err)
			}
			return nil
		})
	}
	var da, db api.Decision
	var wg sync.WaitGroup
	wg.Go(func() { _, da, _ = schedule(t, qa.URL, "model=m&vram_bytes=50Gi") })
	wg.Go(func() { _, db, _ = schedule(t, qb.URL, "model=m&vram_bytes=50Gi") })
	wg.Wait()
	if da.ReservationID == "" || db.ReservationID == "" || da.HiveID != "h1" || db.HiveID != "h1" || da.GPU.Index != db.GPU.Index {
		t.Fatalf("two queens asked at once: %+v / %+v, want both on h1 GPU 0 (reservations are per queen)", da, db)
	}
	// Scheduler A starts its worker; the fake GPU shows it holding 50 GiB.
	w := spawn(t, hive, "a", api.SpawnRequest{Args: []string{"--model", "m"}})
	fake.Set(gpufake.Scenario{GPUs: []gpufake.GPU{h100(0, "GPU-cccccccc-0000-0000-0000-000000000000", 51200)},
		Procs: []gpufake.Proc{{PID: w.PID, GPU: 0, Name: "testworker", UsedMiB: 51200, SMPct: ptr(5)}}})
	for _, q := range []*harness.Daemon{qa, qb} {
		harness.WaitFor(t, 10*time.Second, func() error {
			if rs := reservations(t, q.URL); len(rs) != 0 {
				return fmt.Errorf("%s still holds %+v", q.Name, rs)
			}
			// The GPU's use and the worker's come from two nvidia-smi
			// queries: a pass between them can show the worker on the
			// GPU (ending the reservations) before the GPU's own figure.
			var h api.Hive
			if err := (harness.Client{}).Get(q.URL+"/v1/hives/h1", &h); err != nil || len(h.Node.GPUs) != 1 || h.Node.GPUs[0].VRAMUsedBytes == nil || *h.Node.GPUs[0].VRAMUsedBytes < 50<<30 {
				return fmt.Errorf("%s: GPU %+v %v, want 50 GiB used", q.Name, h.Node.GPUs, err)
			}
			return nil
		})
	}
	// Scheduler B's reservation is gone; asking again, it learns the GPU
	// is taken: the model now runs (route to it), and 50 GiB more does
	// not fit anywhere.
	code, d, body := schedule(t, qb.URL, "model=m&vram_bytes=50Gi")
	if code != 200 || d.Kind != "worker" || d.Worker.ID != w.ID {
		t.Fatalf("B asking again: %d %s, want the worker A started", code, body)
	}
	code, _, body = schedule(t, qb.URL, "model=other&vram_bytes=50Gi")
	if code != 404 || !strings.Contains(body, "GPU 0 has 29.6GiB free") {
		t.Fatalf("B placing another 50 GiB: %d %s, want 404", code, body)
	}
	if code, _ := harness.Call(t, "DELETE", qb.URL+"/v1/reservations/"+db.ReservationID, nil); code != 404 {
		t.Fatalf("B releasing its claimed reservation: %d, want 404 (already ended)", code)
	}
}
