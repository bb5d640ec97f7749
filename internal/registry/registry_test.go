package registry

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/telemetry"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) publish(e Event) { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }
func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.evs
	r.evs = nil
	return e
}

func types(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type)
	}
	return strings.Join(s, ",")
}

func newReg() (*Registry, *clock, *recorder) {
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	rec := &recorder{}
	return New(Config{HiveTTL: 90 * time.Second, Now: c.now, Publish: rec.publish}), c, rec
}

func f(v float64) *float64 { return &v }
func u(v uint64) *uint64   { return &v }
func s(v string) *string   { return &v }

func worker(inst, model string, pid int, cpu, gpu float64) telemetry.Worker {
	return telemetry.Worker{ID: "llm-" + inst, Group: "llm", Instance: inst, PID: pid, PIDs: []int{pid}, Model: s(model),
		State: telemetry.StateRunning, CPUPct: f(cpu), GPUUtilPct: f(gpu)}
}

func hb(hive, session string, seq uint64, ws ...telemetry.Worker) telemetry.Heartbeat {
	return telemetry.Heartbeat{HiveID: hive, HiveURL: "http://" + hive + ":7835", SessionID: session, Seq: seq, IntervalMS: 1000, Workers: ws}
}

func mustIngest(t *testing.T, r *Registry, h telemetry.Heartbeat) Result {
	t.Helper()
	res, err := r.Ingest(h)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestEmptyRegistry(t *testing.T) {
	r, _, _ := newReg()
	if len(r.Hives()) != 0 || len(r.Workers(Filter{})) != 0 {
		t.Fatal("new registry not empty")
	}
	if _, ok := r.Hive("x"); ok {
		t.Fatal("unknown hive found")
	}
	if _, err := r.Schedule("m", 0); !errors.Is(err, ErrNoPlacement) {
		t.Fatalf("Schedule on empty registry = %v", err)
	}
	r.Sweep()
}

func TestIngestReplacesWorkersAndEmitsChanges(t *testing.T) {
	r, _, rec := newReg()
	res := mustIngest(t, r, hb("h1", "s1", 1, worker("a", "m", 10, 1, 0), worker("b", "m", 11, 1, 0)))
	if !res.New {
		t.Fatal("first heartbeat not new")
	}
	if got := types(rec.take()); got != "hive_online,worker_added,worker_added,hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	// b exits (OOM), c appears, a unchanged.
	b := worker("b", "m", 11, 0, 0)
	b.State, b.Signal, b.OOMKilled = telemetry.StateExited, s("SIGKILL"), func() *bool { v := true; return &v }()
	mustIngest(t, r, hb("h1", "s1", 2, worker("a", "m", 10, 1, 0), b, worker("c", "m", 12, 1, 0)))
	evs := rec.take()
	if got := types(evs); got != "worker_removed,worker_added,hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	rm := evs[0].Data.(WorkerRemoved)
	if rm.WorkerID != "llm-b" || rm.Reason != ReasonExited || *rm.Signal != "SIGKILL" || !*rm.OOMKilled {
		t.Fatalf("worker_removed %+v", rm)
	}
	// The exited b is dropped from the list: no second event for it; a is
	// replaced by a new process under the same id.
	mustIngest(t, r, hb("h1", "s1", 3, worker("a", "m", 99, 1, 0), worker("c", "m", 12, 1, 0)))
	if got := types(rec.take()); got != "worker_removed,worker_added,hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	ws := r.Workers(Filter{})
	if len(ws) != 2 || ws[0].PID != 99 || ws[1].ID != "llm-c" {
		t.Fatalf("workers %+v", ws)
	}
}

func TestIngestIgnoresOldSeqAndDetectsRestart(t *testing.T) {
	r, _, rec := newReg()
	mustIngest(t, r, hb("h1", "s1", 5, worker("a", "m", 10, 1, 0), worker("b", "m", 11, 1, 0)))
	rec.take()
	for _, seq := range []uint64{5, 4} {
		if res := mustIngest(t, r, hb("h1", "s1", seq)); !res.Ignored {
			t.Fatalf("seq %d after 5 not ignored", seq)
		}
	}
	if len(r.Workers(Filter{})) != 2 || len(rec.take()) != 0 {
		t.Fatal("an ignored heartbeat changed the registry")
	}
	// A new session is a restart, even with a lower seq: a is re-adopted
	// (same pid, no events), b died during the downtime.
	res := mustIngest(t, r, hb("h1", "s2", 1, worker("a", "m", 10, 1, 0)))
	if !res.Restarted {
		t.Fatal("new session not treated as restart")
	}
	evs := rec.take()
	if got := types(evs); got != "hive_online,worker_removed,hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	if d := evs[1].Data.(WorkerRemoved); d.WorkerID != "llm-b" || d.Reason != ReasonHiveRestarted {
		t.Fatalf("removed %+v", d)
	}
	if st := r.Stats(); st.Ignored != 2 || st.Heartbeats != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStaleAndTTLUseQueenClock(t *testing.T) {
	r, c, rec := newReg()
	h := hb("h1", "s1", 1, worker("a", "m", 10, 1, 0))
	h.SentAt = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) // the hive's clock is wrong: irrelevant
	mustIngest(t, r, h)
	rec.take()
	c.add(3 * time.Second)
	r.Sweep()
	if hv, _ := r.Hive("h1"); hv.State != StateOnline || len(rec.take()) != 0 {
		t.Fatalf("stale after exactly 3 intervals: %s", hv.State)
	}
	c.add(10 * time.Millisecond)
	r.Sweep()
	if got := types(rec.take()); got != "hive_stale" {
		t.Fatalf("events %s", got)
	}
	ws := r.Workers(Filter{})
	if len(ws) != 1 || !ws[0].Stale {
		t.Fatalf("stale hive's workers must be listed, marked stale: %+v", ws)
	}
	if _, err := r.Schedule("m", 0); !errors.Is(err, ErrNoPlacement) || !strings.Contains(err.Error(), "1 on stale hives") {
		t.Fatalf("stale worker scheduled: %v", err)
	}
	// Back before the TTL: online again, no restart.
	mustIngest(t, r, hb("h1", "s1", 2, worker("a", "m", 10, 1, 0)))
	evs := rec.take()
	if types(evs) != "hive_online,hive_telemetry" || !evs[0].Data.(HiveOnline).Returned {
		t.Fatalf("events %s %+v", types(evs), evs)
	}
	if _, err := r.Schedule("m", 0); err != nil {
		t.Fatal(err)
	}
	// Silent past the TTL: removed with its workers.
	c.add(91 * time.Second)
	r.Sweep()
	if got := types(rec.take()); got != "hive_stale,worker_removed,hive_removed" && got != "worker_removed,hive_removed" {
		t.Fatalf("events %s", got)
	}
	if len(r.Hives()) != 0 || len(r.Workers(Filter{})) != 0 {
		t.Fatal("removed hive still listed")
	}
}

func TestQueries(t *testing.T) {
	r, _, _ := newReg()
	h1 := hb("h1", "s", 1, worker("a", "llama", 10, 2, 5), worker("b", "llama", 11, 80, 90), worker("c", "qwen", 12, 1, 0))
	h1.Node.GPUs = []telemetry.GPU{{Index: 0, UUID: "GPU-1", VRAMTotalBytes: u(80 << 30), VRAMUsedBytes: u(70 << 30)}}
	h2 := hb("h2", "s", 1, worker("d", "llama", 20, 1, 1))
	h2.Node.GPUs = []telemetry.GPU{{Index: 0, UUID: "GPU-2", VRAMTotalBytes: u(80 << 30), VRAMUsedBytes: u(10 << 30)}, {Index: 1, UUID: "GPU-3", VRAMTotalBytes: u(80 << 30), VRAMUsedBytes: u(5 << 30)}}
	mustIngest(t, r, h1)
	mustIngest(t, r, h2)

	yes, no := true, false
	tests := []struct {
		name string
		f    Filter
		want string
	}{
		{"all", Filter{}, "h1/llm-a h1/llm-b h1/llm-c h2/llm-d"},
		{"model", Filter{Model: "llama"}, "h1/llm-a h1/llm-b h2/llm-d"},
		{"hive", Filter{Hive: "h2"}, "h2/llm-d"},
		{"idle", Filter{Idle: &yes}, "h1/llm-a h1/llm-c h2/llm-d"},
		{"busy", Filter{Idle: &no}, "h1/llm-b"},
		{"state", Filter{State: telemetry.StateExited}, ""},
		{"unknown model", Filter{Model: "nope"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, w := range r.Workers(tc.f) {
				got = append(got, w.HiveID+"/"+w.ID)
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("got %v, want %s", got, tc.want)
			}
		})
	}

	// Least loaded idle worker serving the model: d (gpu 1%) beats a (5%).
	d, err := r.Schedule("llama", 0)
	if err != nil || d.Kind != "worker" || d.Worker.ID != "llm-d" || d.HiveURL != "http://h2:7835" {
		t.Fatalf("Schedule(llama) = %+v, %v", d, err)
	}
	// No worker serves mistral: the GPU with the most free VRAM (h2 gpu 1).
	d, err = r.Schedule("mistral", 20<<30)
	if err != nil || d.Kind != "gpu" || d.HiveID != "h2" || d.GPU.Index != 1 || *d.FreeVRAMBytes != 75<<30 {
		t.Fatalf("Schedule(mistral) = %+v, %v", d, err)
	}
	// Nothing has 100 GiB free.
	if _, err := r.Schedule("mistral", 100<<30); !errors.Is(err, ErrNoPlacement) || !strings.Contains(err.Error(), "none of 3 GPUs") {
		t.Fatalf("Schedule(100Gi) = %v", err)
	}
}

func TestIdleNeedsKnownReadings(t *testing.T) {
	r, _, _ := newReg()
	unknownCPU := worker("a", "m", 1, 0, 0)
	unknownCPU.CPUPct = nil
	gpuFailed := worker("b", "m", 2, 1, 0)
	gpuFailed.GPUUtilPct, gpuFailed.Errors = nil, []string{"gpu: nvidia-smi timed out after 2s"}
	noGPU := worker("c", "m", 3, 1, 0)
	noGPU.GPUUtilPct = nil
	mustIngest(t, r, hb("h", "s", 1, unknownCPU, gpuFailed, noGPU))
	yes := true
	ws := r.Workers(Filter{Idle: &yes})
	if len(ws) != 1 || ws[0].ID != "llm-c" {
		t.Fatalf("idle workers %+v: a GPU failure or unknown CPU is not idle; no GPU backend is", ws)
	}
}

func TestRejectsBadHeartbeats(t *testing.T) {
	r, _, rec := newReg()
	mustIngest(t, r, hb("h1", "s", 1, worker("a", "m", 1, 0, 0)))
	rec.take()
	bad := func(mut func(*telemetry.Heartbeat)) telemetry.Heartbeat {
		h := hb("h1", "s", 2, worker("a", "m", 1, 0, 0))
		mut(&h)
		return h
	}
	tests := []struct {
		name string
		hb   telemetry.Heartbeat
		want string
	}{
		{"empty hive id", bad(func(h *telemetry.Heartbeat) { h.HiveID = "" }), "hive_id"},
		{"path in hive id", bad(func(h *telemetry.Heartbeat) { h.HiveID = "../x" }), "hive_id"},
		{"no session", bad(func(h *telemetry.Heartbeat) { h.SessionID = "" }), "session_id"},
		{"bad url", bad(func(h *telemetry.Heartbeat) { h.HiveURL = "ftp://x" }), "hive_url"},
		{"interval", bad(func(h *telemetry.Heartbeat) { h.IntervalMS = 5 }), "interval_ms"},
		{"worker id", bad(func(h *telemetry.Heartbeat) { h.Workers[0].ID = "x" }), "id must be group-instance"},
		{"worker group", bad(func(h *telemetry.Heartbeat) { h.Workers[0].Group = "a/b" }), "group"},
		{"state", bad(func(h *telemetry.Heartbeat) { h.Workers[0].State = "dancing" }), "state"},
		{"duplicate", bad(func(h *telemetry.Heartbeat) { h.Workers = append(h.Workers, h.Workers[0]) }), "duplicate"},
		{"too many workers", bad(func(h *telemetry.Heartbeat) { h.Workers = make([]telemetry.Worker, MaxWorkers+1) }), "at most"},
		{"huge arg", bad(func(h *telemetry.Heartbeat) { h.Workers[0].Args = []string{strings.Repeat("x", 5000)} }), "longer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Ingest(tc.hb)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ingest = %v, want ErrInvalid naming %q", err, tc.want)
			}
		})
	}
	if ws := r.Workers(Filter{}); len(ws) != 1 || ws[0].PID != 1 || len(rec.take()) != 0 {
		t.Fatal("a rejected heartbeat changed the registry")
	}
	if st := r.Stats(); st.Rejected != uint64(len(tests)) {
		t.Fatalf("rejected %d, want %d", st.Rejected, len(tests))
	}
}

// Many hives ingest and are queried at once; the race detector checks the
// locking and every hive keeps its own workers.
func TestConcurrentIngestAndQueries(t *testing.T) {
	r, c, _ := newReg()
	const hives, beats = 20, 50
	var wg sync.WaitGroup
	for i := range hives {
		wg.Go(func() {
			id := fmt.Sprintf("h%02d", i)
			for seq := range uint64(beats) {
				ws := []telemetry.Worker{worker(fmt.Sprint(i), "m", 1000+i, 1, 0)}
				if _, err := r.Ingest(hb(id, "s", seq+1, ws...)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = r.Workers(Filter{Model: "m"})
				_, _ = r.Schedule("m", 0)
				_ = r.Hives()
				r.Sweep()
				c.add(time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	hs := r.Hives()
	if len(hs) != hives {
		t.Fatalf("%d hives, want %d", len(hs), hives)
	}
	for i, h := range hs {
		if h.Seq != beats || len(h.Workers) != 1 || h.Workers[0].PID != 1000+i {
			t.Fatalf("hive %s: seq %d workers %+v", h.ID, h.Seq, h.Workers)
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add("h1", "s", "llm", "a", "running", int64(1000))
	f.Fuzz(func(t *testing.T, hive, session, group, inst, state string, interval int64) {
		h := telemetry.Heartbeat{HiveID: hive, SessionID: session, IntervalMS: interval,
			Workers: []telemetry.Worker{{ID: group + "-" + inst, Group: group, Instance: inst, State: telemetry.State(state)}}}
		if Validate(&h) == nil && (strings.Contains(hive, "/") || strings.Contains(group, "/") || strings.Contains(inst, "..") && len(inst) == 2) {
			t.Fatalf("accepted %+v", h)
		}
	})
}
