package registry

import (
	"encoding/json"
	"math"
	"slices"

	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/ids"

	"github.com/rbee-dev/rbee/internal/api"
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
	// The fake clock barely moves: a rate limit would refuse the tests'
	// back-to-back heartbeats. TestRateLimit covers it.
	return New(Config{HiveTTL: 90 * time.Second, Now: c.now, Publish: rec.publish, HeartbeatRate: 1e6, HeartbeatBurst: 1e6}), c, rec
}

func f(v float64) *float64 { return &v }
func u(v uint64) *uint64   { return &v }
func s(v string) *string   { return &v }

func wk(inst, model string, pid int, cpu, gpu float64) api.Worker {
	return api.Worker{
		ID:           "llm-" + inst,
		PID:          pid,
		PIDs:         []int{pid},
		State:        api.StateReady,
		CPUPct:       f(cpu),
		GPUUtilPct:   f(gpu),
		WorkerStatic: api.WorkerStatic{Group: "llm", Instance: inst, Model: s(model)},
	}
}

// hb is a heartbeat carrying ws, each with its static fields.
func hb(hive, session string, seq uint64, ws ...api.Worker) api.Heartbeat {
	reps := make([]api.WorkerReport, len(ws))
	for i := range ws {
		reps[i] = api.ReportOf(&ws[i], true)
	}
	return api.Heartbeat{HiveID: hive, HiveURL: "http://" + hive + ":7835", SessionID: session, Seq: seq, IntervalMS: 1000,
		Node: api.Node{CPUCores: 4}, Workers: reps}
}

func mustIngest(t *testing.T, r *Registry, h api.Heartbeat) Result {
	t.Helper()
	res, err := r.Ingest(h)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestEmptyRegistry(t *testing.T) {
	r, _, _ := newReg()
	if len(r.Hives(nil)) != 0 || len(r.Workers(Filter{})) != 0 {
		t.Fatal("new registry not empty")
	}
	if _, ok := r.Hive("x"); ok {
		t.Fatal("unknown hive found")
	}
	if _, err := r.Schedule(Request{Model: "m", VRAMBytes: 0}); !errors.Is(err, ErrNoPlacement) {
		t.Fatalf("Schedule on empty registry = %v", err)
	}
	r.Sweep()
}

func TestIngestReplacesWorkersAndEmitsChanges(t *testing.T) {
	r, _, rec := newReg()
	res := mustIngest(t, r, hb("h1", "s1", 1, wk("a", "m", 10, 1, 0), wk("b", "m", 11, 1, 0)))
	if !res.New {
		t.Fatal("first heartbeat not new")
	}
	// The hive joins in one event that carries its workers.
	evs := rec.take()
	if got := types(evs); got != "hive_online,hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	if on := evs[0].Data.(api.HiveOnline); len(on.Hive.Workers) != 2 || on.Hive.Workers[1].ID != "llm-b" || on.Hive.SessionID != "" {
		t.Fatalf("hive_online %+v", on)
	}
	// b exits (OOM), c appears, a unchanged.
	b := wk("b", "m", 11, 0, 0)
	b.State, b.Signal, b.OOMKilled = api.StateExited, s("SIGKILL"), func() *bool { v := true; return &v }()
	mustIngest(t, r, hb("h1", "s1", 2, wk("a", "m", 10, 1, 0), b, wk("c", "m", 12, 1, 0)))
	evs = rec.take()
	if got := types(evs); got != "worker_removed,worker_added,hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	rm := evs[0].Data.(api.WorkerRemoved)
	if rm.WorkerID != "llm-b" || rm.Reason != api.ReasonExited || *rm.Signal != "SIGKILL" || !*rm.OOMKilled {
		t.Fatalf("worker_removed %+v", rm)
	}
	// The exited b is dropped from the list: no second event for it; a is
	// replaced by a new process under the same id.
	mustIngest(t, r, hb("h1", "s1", 3, wk("a", "m", 99, 1, 0), wk("c", "m", 12, 1, 0)))
	if got := types(rec.take()); got != "worker_removed,worker_added,hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	ws := r.Workers(Filter{})
	if len(ws) != 2 || ws[0].PID != 99 || ws[1].ID != "llm-c" {
		t.Fatalf("workers %+v", ws)
	}
}

// A worker that starts and exits between two heartbeats (OOM-killed at
// start, a restart that fails at once) still reaches clients as one
// worker_removed carrying its exit.
func TestExitBetweenHeartbeats(t *testing.T) {
	exited := func(inst string, pid int, sig string) api.Worker {
		w := wk(inst, "m", pid, 0, 0)
		w.State, w.Signal = api.StateExited, s(sig)
		return w
	}
	stopped := func(inst string, pid int) api.Worker {
		w := exited(inst, pid, "SIGTERM")
		w.Stopped = true
		return w
	}
	r, _, rec := newReg()
	seq := uint64(1)
	mustIngest(t, r, hb("h1", "s1", seq, wk("a", "m", 10, 1, 0), exited("z", 5, "SIGKILL")))
	rec.take()
	for _, tc := range []struct {
		name   string
		ws     []api.Worker
		want   string
		exitOf string // the worker_removed's worker and signal, when one is wanted
	}{
		{"new and already gone", []api.Worker{wk("a", "m", 10, 1, 0), exited("hog", 20, "SIGKILL"), exited("z", 5, "SIGKILL")},
			"worker_removed,hive_telemetry", "llm-hog SIGKILL"},
		{"the same exit again says nothing", []api.Worker{wk("a", "m", 10, 1, 0), exited("hog", 20, "SIGKILL"), exited("z", 5, "SIGKILL")},
			"hive_telemetry", ""},
		{"replaced by a process that exited", []api.Worker{exited("a", 11, "SIGSEGV"), exited("hog", 20, "SIGKILL"), exited("z", 5, "SIGKILL")},
			"worker_removed,hive_telemetry", "llm-a SIGSEGV"},
		{"exited, restarted, exited again", []api.Worker{exited("a", 11, "SIGSEGV"), exited("hog", 20, "SIGKILL"), exited("z", 6, "SIGABRT")},
			"worker_removed,hive_telemetry", "llm-z SIGABRT"},
		{"stopped on request", []api.Worker{exited("a", 11, "SIGSEGV"), exited("hog", 20, "SIGKILL"), exited("z", 6, "SIGABRT"), stopped("s", 30)},
			"worker_removed,hive_telemetry", "llm-s SIGTERM stopped"},
	} {
		seq++
		mustIngest(t, r, hb("h1", "s1", seq, tc.ws...))
		evs := rec.take()
		if got := types(evs); got != tc.want {
			t.Fatalf("%s: events %s, want %s", tc.name, got, tc.want)
		}
		if tc.exitOf == "" {
			continue
		}
		rm := evs[0].Data.(api.WorkerRemoved)
		want, reason := tc.exitOf, api.ReasonExited
		if w, ok := strings.CutSuffix(want, " stopped"); ok {
			want, reason = w, api.ReasonStopped
		}
		if got := rm.WorkerID + " " + *rm.Signal; got != want || rm.Reason != reason {
			t.Fatalf("%s: worker_removed %s (%s), want %s (%s)", tc.name, got, rm.Reason, want, reason)
		}
	}
}

func TestIngestIgnoresOldSeqAndDetectsRestart(t *testing.T) {
	r, _, rec := newReg()
	mustIngest(t, r, hb("h1", "s1", 5, wk("a", "m", 10, 1, 0), wk("b", "m", 11, 1, 0)))
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
	// (same pid, no event of its own), b died during the downtime; the
	// hive_online that follows b's removal carries the hive as it is now.
	res := mustIngest(t, r, hb("h1", "s2", 1, wk("a", "m", 10, 1, 0)))
	if !res.Restarted {
		t.Fatal("new session not treated as restart")
	}
	evs := rec.take()
	if got := types(evs); got != "worker_removed,hive_online,hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	if d := evs[0].Data.(api.WorkerRemoved); d.WorkerID != "llm-b" || d.Reason != api.ReasonHiveRestarted {
		t.Fatalf("removed %+v", d)
	}
	if on := evs[1].Data.(api.HiveOnline); !on.Restarted || len(on.Hive.Workers) != 1 || on.Hive.Workers[0].ID != "llm-a" {
		t.Fatalf("hive_online %+v", on)
	}
	if st := r.Stats(); st.Ignored != 2 || st.Heartbeats != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStaleAndTTLUseQueenClock(t *testing.T) {
	r, c, rec := newReg()
	h := hb("h1", "s1", 1, wk("a", "m", 10, 1, 0))
	h.SentAt = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) // the hive's clock is wrong: irrelevant
	mustIngest(t, r, h)
	rec.take()
	c.add(3 * time.Second)
	r.Sweep()
	if hv, _ := r.Hive("h1"); hv.State != api.HiveStateOnline || len(rec.take()) != 0 {
		t.Fatalf("stale after exactly 3 intervals: %s", hv.State)
	}
	c.add(10 * time.Millisecond)
	r.Sweep()
	if got := types(rec.take()); got != "hive_stale" {
		t.Fatalf("events %s", got)
	}
	ws := r.Workers(Filter{})
	if len(ws) != 1 || !ws[0].Stale || ws[0].Idle {
		t.Fatalf("stale hive's workers must be listed, marked stale, not idle: %+v", ws)
	}
	if _, err := r.Schedule(Request{Model: "m", VRAMBytes: 0}); !errors.Is(err, ErrNoPlacement) || !strings.Contains(err.Error(), "llm-a@h1 on a stale hive") {
		t.Fatalf("stale worker scheduled: %v", err)
	}
	// Back before the TTL: online again, no restart.
	mustIngest(t, r, hb("h1", "s1", 2, wk("a", "m", 10, 1, 0)))
	evs := rec.take()
	if types(evs) != "hive_online,hive_telemetry" || !evs[0].Data.(api.HiveOnline).Returned {
		t.Fatalf("events %s %+v", types(evs), evs)
	}
	if _, err := r.Schedule(Request{Model: "m", VRAMBytes: 0}); err != nil {
		t.Fatal(err)
	}
	// Silent past the TTL: removed with its workers, in one event.
	c.add(91 * time.Second)
	r.Sweep()
	evs = rec.take()
	if got := types(evs); got != "hive_removed" {
		t.Fatalf("events %s", got)
	}
	if g := evs[0].Data.(api.HiveGone); !slices.Equal(g.WorkerIDs, []string{"llm-a"}) {
		t.Fatalf("hive_removed %+v", g)
	}
	if len(r.Hives(nil)) != 0 || len(r.Workers(Filter{})) != 0 {
		t.Fatal("removed hive still listed")
	}
}

func TestQueries(t *testing.T) {
	r, _, _ := newReg()
	h1 := hb("h1", "s", 1, wk("a", "llama", 10, 2, 5), wk("b", "llama", 11, 80, 90), wk("c", "qwen", 12, 1, 0))
	h1.Node.GPUs = []api.GPU{{Index: 0, UUID: "GPU-1", VRAMTotalBytes: u(80 << 30), VRAMUsedBytes: u(70 << 30)}}
	h2 := hb("h2", "s", 1, wk("d", "llama", 20, 1, 1))
	h2.Node.GPUs = []api.GPU{{Index: 0, UUID: "GPU-2", VRAMTotalBytes: u(80 << 30), VRAMUsedBytes: u(10 << 30)}, {Index: 1, UUID: "GPU-3", VRAMTotalBytes: u(80 << 30), VRAMUsedBytes: u(5 << 30)}}
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
		{"state", Filter{State: api.StateExited}, ""},
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
	d, err := r.Schedule(Request{Model: "llama", VRAMBytes: 0})
	if err != nil || d.Kind != "worker" || d.Worker.ID != "llm-d" || d.HiveURL != "http://h2:7835" {
		t.Fatalf("Schedule(llama) = %+v, %v", d, err)
	}
	// No worker serves mistral: the GPU with the most free VRAM (h2 gpu 1).
	d, err = r.Schedule(Request{Model: "mistral", VRAMBytes: 20 << 30})
	if err != nil || d.Kind != "gpu" || d.HiveID != "h2" || d.GPU.Index != 1 || *d.FreeVRAMBytes != 75<<30 {
		t.Fatalf("Schedule(mistral) = %+v, %v", d, err)
	}
	// Nothing has 100 GiB free.
	if _, err := r.Schedule(Request{Model: "mistral", VRAMBytes: 100 << 30}); !errors.Is(err, ErrNoPlacement) || !strings.Contains(err.Error(), "none of 3 GPUs") {
		t.Fatalf("Schedule(100Gi) = %v", err)
	}
}

func TestIdleNeedsKnownReadings(t *testing.T) {
	r, _, _ := newReg()
	unknownCPU := wk("a", "m", 1, 0, 0)
	unknownCPU.CPUPct = nil
	gpuFailed := wk("b", "m", 2, 1, 0)
	gpuFailed.GPUUtilPct, gpuFailed.GPUError, gpuFailed.Errors = nil, "nvidia-smi timed out after 2s", []string{"gpu: nvidia-smi timed out after 2s"}
	noGPU := wk("c", "m", 3, 1, 0)
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
	mustIngest(t, r, hb("h1", "s", 1, wk("a", "m", 1, 0, 0)))
	rec.take()
	bad := func(mut func(*api.Heartbeat)) api.Heartbeat {
		h := hb("h1", "s", 2, wk("a", "m", 1, 0, 0))
		mut(&h)
		return h
	}
	tests := []struct {
		name string
		hb   api.Heartbeat
		want string
	}{
		{"empty hive id", bad(func(h *api.Heartbeat) { h.HiveID = "" }), "hive_id"},
		{"path in hive id", bad(func(h *api.Heartbeat) { h.HiveID = "../x" }), "hive_id"},
		{"control in hive id", bad(func(h *api.Heartbeat) { h.HiveID = "h\x1b" }), "hive_id"},
		{"long hive id", bad(func(h *api.Heartbeat) { h.HiveID = strings.Repeat("h", 65) }), "hive_id"},
		{"no session", bad(func(h *api.Heartbeat) { h.SessionID = "" }), "session_id"},
		{"bad url", bad(func(h *api.Heartbeat) { h.HiveURL = "ftp://x" }), "hive_url"},
		{"interval", bad(func(h *api.Heartbeat) { h.IntervalMS = 5 }), "interval_ms"},
		{"no cores", bad(func(h *api.Heartbeat) { h.Node.CPUCores = 0 }), "cpu_cores"},
		{"too many workers", bad(func(h *api.Heartbeat) { h.Workers = make([]api.WorkerReport, MaxWorkers+1) }), "at most"},
		{"too many gpus", bad(func(h *api.Heartbeat) { h.Node.GPUs = make([]api.GPU, MaxGPUs+1) }), "gpus"},
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

// A bad worker entry costs only itself: it is dropped with the reason and
// the rest of the heartbeat is applied.
func TestDropsBadWorkers(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := func(inst string, mut func(*api.Worker)) api.Worker {
		x := wk(inst, "m", 1, 1, 0)
		mut(&x)
		return x
	}
	future := now.Add(2 * time.Hour)
	tests := []struct {
		name string
		w    api.Worker
		want string
	}{
		{"id", w("a", func(x *api.Worker) { x.ID = "x" }), "group-instance"},
		{"id not of its names", w("a", func(x *api.Worker) { x.ID = "llm-b" }), "id must be group-instance"},
		{"group", w("a", func(x *api.Worker) { x.Group = "a/b" }), "group"},
		{"state", w("a", func(x *api.Worker) { x.State = "dancing" }), "state"},
		{"negative cpu", w("a", func(x *api.Worker) { x.CPUPct = f(-1e308) }), "cpu_pct"},
		{"cpu beyond the cores", w("a", func(x *api.Worker) { x.CPUPct = f(1000) }), "cpu_pct"},
		{"gpu above 100", w("a", func(x *api.Worker) { x.GPUUtilPct = f(101) }), "gpu_util_pct"},
		{"sm above 100", w("a", func(x *api.Worker) {
			x.GPUs = []api.WorkerGPU{{Index: 0, UUID: "GPU-1", SMUtilPct: f(300)}}
		}), "sm_util_pct"},
		{"vram beyond a GPU", w("a", func(x *api.Worker) {
			x.GPUs = []api.WorkerGPU{{Index: 0, UUID: "GPU-1", VRAMBytes: u(5 << 40)}}
		}), "vram"},
		{"memory", w("a", func(x *api.Worker) { x.MemBytes = u(math.MaxUint64) }), "mem_bytes"},
		{"io", w("a", func(x *api.Worker) { x.IOReadBps = f(-5) }), "io_read_bps"},
		{"pid", w("a", func(x *api.Worker) { x.PIDs = []int{MaxPID + 1} }), "pid"},
		{"too many pids", w("a", func(x *api.Worker) { x.PIDs = make([]int, MaxPIDsPerWorker+1) }), "pids"},
		{"control in model", w("a", func(x *api.Worker) { x.Model = s("m\x1b[2J") }), "model"},
		{"bidi in model", w("a", func(x *api.Worker) { x.Model = s("m\u202e") }), "model"},
		{"huge arg", w("a", func(x *api.Worker) { x.Args = []string{strings.Repeat("x", 5000)} }), "longer"},
		{"many args", w("a", func(x *api.Worker) { x.Args = make([]string, 300) }), "args"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hb("h1", "s", 1, wk("ok", "m", 7, 1, 0), tc.w)
			rep, err := Sanitize(&h, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Workers) != 1 || h.Workers[0].ID != "llm-ok" {
				t.Fatalf("kept %d workers", len(h.Workers))
			}
			if len(rep.Dropped) != 1 || !strings.Contains(rep.Dropped[0].Reason, tc.want) {
				t.Fatalf("dropped %+v, want one naming %q", rep.Dropped, tc.want)
			}
		})
	}
	// A duplicate is dropped; a timestamp in the future is nulled, not fatal.
	h := hb("h1", "s", 1, wk("a", "m", 1, 1, 0), wk("a", "m", 2, 1, 0),
		w("t", func(x *api.Worker) { x.StartedAt, x.UptimeS = &future, f(1) }))
	rep, err := Sanitize(&h, now)
	if err != nil || len(h.Workers) != 2 || len(rep.Dropped) != 1 || len(rep.Clamped) != 1 || h.Workers[1].Static.StartedAt != nil {
		t.Fatalf("rep %+v workers %+v err %v", rep, h.Workers, err)
	}
	// Impossible host values are nulled; the GPU stays, without them.
	h = hb("h1", "s", 1)
	h.Node.CPUPct = f(400)
	h.Node.MemTotalBytes, h.Node.MemUsedBytes = u(10), u(20)
	h.Node.GPUs = []api.GPU{{Index: 0, UUID: "GPU-1", VRAMTotalBytes: u(math.MaxUint64), VRAMUsedBytes: u(1), UtilPct: f(-1)}}
	rep, err = Sanitize(&h, now)
	if err != nil || len(rep.Clamped) != 4 || h.Node.CPUPct != nil || h.Node.MemUsedBytes != nil ||
		h.Node.GPUs[0].VRAMTotalBytes != nil || h.Node.GPUs[0].UtilPct != nil {
		t.Fatalf("node %+v rep %+v err %v", h.Node, rep, err)
	}
	// A GPU sample time after the heartbeat was sent, or a day before,
	// is dropped; one just before it is kept.
	for _, tc := range []struct {
		ago  time.Duration
		keep bool
	}{{-time.Second, false}, {25 * time.Hour, false}, {300 * time.Millisecond, true}} {
		h = hb("h1", "s", 1)
		h.SentAt = now
		at := now.Add(-tc.ago)
		h.Node.GPUSampledAt = &at
		rep, err = Sanitize(&h, now)
		if err != nil || (h.Node.GPUSampledAt != nil) != tc.keep || len(rep.Clamped) != map[bool]int{true: 0, false: 1}[tc.keep] {
			t.Fatalf("gpu_sampled_at %v before sent_at: kept %v, clamped %q, err %v; want kept %v", tc.ago, h.Node.GPUSampledAt != nil, rep.Clamped, err, tc.keep)
		}
	}
}

func TestRateLimitAndMaxHives(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	r := New(Config{Now: c.now, MaxHives: 2, HeartbeatRate: 10, HeartbeatBurst: 5})
	var limited int
	for seq := uint64(1); seq <= 20; seq++ {
		if _, err := r.Ingest(hb("h1", "s", seq)); errors.Is(err, ErrRateLimited) {
			limited++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited != 15 {
		t.Fatalf("%d of 20 instant heartbeats limited, want 15 (a burst of 5)", limited)
	}
	c.add(time.Second) // ten more tokens, capped at the burst of five
	for seq := uint64(21); seq <= 25; seq++ {
		if _, err := r.Ingest(hb("h1", "s", seq)); err != nil {
			t.Fatalf("heartbeat %d after a second: %v", seq, err)
		}
	}
	mustIngest(t, r, hb("h2", "s", 1))
	if _, err := r.Ingest(hb("h3", "s", 1)); !errors.Is(err, ErrTooManyHives) {
		t.Fatalf("third hive: %v", err)
	}
	if st := r.Stats(); st.Hives != 2 || st.TooManyHives != 1 || st.RateLimited != 15 {
		t.Fatalf("stats %+v", st)
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
				ws := []api.Worker{wk(fmt.Sprint(i), "m", 1000+i, 1, 0)}
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
				_, _ = r.Schedule(Request{Model: "m", VRAMBytes: 0})
				_ = r.Hives(nil)
				r.Sweep()
				c.add(time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	hs := r.Hives(nil)
	if len(hs) != hives {
		t.Fatalf("%d hives, want %d", len(hs), hives)
	}
	for i, h := range hs {
		if h.Seq != beats || len(h.Workers) != 1 || h.Workers[0].PID != 1000+i {
			t.Fatalf("hive %s: seq %d workers %+v", h.ID, h.Seq, h.Workers)
		}
	}
}

// FuzzSanitize feeds arbitrary JSON through the queen's decode and
// validation: it never panics, and what it accepts holds up to a second
// look (validation is idempotent: nothing left to drop or clamp).
func FuzzSanitize(f *testing.F) {
	seed, _ := json.Marshal(hb("h1", "s", 1, wk("a", "m", 1, 12.5, 3)))
	f.Add(seed)
	f.Add([]byte(`{"hive_id":"h","session_id":"s","node":{"cpu_cores":2,"cpu_pct":-1},"workers":[{"id":"a-b","group":"a","instance":"b","state":"ready","cpu_pct":1e308}]}`))
	f.Add([]byte(`{"hive_id":"..","workers":[]}`))
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		var h api.Heartbeat
		if json.Unmarshal(data, &h) != nil {
			return
		}
		if _, err := Sanitize(&h, now); err != nil {
			return
		}
		if ids.ValidHiveID(h.HiveID) != nil {
			t.Fatalf("accepted hive id %q", h.HiveID)
		}
		again := h
		again.Workers = slices.Clone(h.Workers)
		again.Node.GPUs = slices.Clone(h.Node.GPUs)
		rep, err := Sanitize(&again, now)
		if err != nil || len(rep.Dropped) != 0 || len(rep.Clamped) != 0 {
			t.Fatalf("a validated heartbeat fails a second validation: %v %+v", err, rep)
		}
	})
}

// A worker's static fields travel once: later heartbeats without them
// keep the record whole; a change of them is a worker_changed event; a
// worker the registry has no static fields for waits, and the queen asks.
func TestStaticFieldsOnlyWhenNew(t *testing.T) {
	r, _, rec := newReg()
	a := wk("a", "qwen", 10, 1, 0)
	a.Args, a.Binary, a.CPULimitPct = []string{"--model", "qwen"}, "/opt/w", f(150)
	mustIngest(t, r, hb("h1", "s1", 1, a))
	rec.take()
	lean := hb("h1", "s1", 2, a)
	lean.Workers[0].Static = nil
	lean.Workers[0].Stats[api.StatCPUPct] = 42
	if res := mustIngest(t, r, lean); res.NeedStatic {
		t.Fatal("asked for static fields the registry has")
	}
	ws := r.Workers(Filter{})
	if len(ws) != 1 || ws[0].Binary != "/opt/w" || *ws[0].Model != "qwen" || *ws[0].CPUPct != 42 || *ws[0].CPULimitPct != 150 {
		t.Fatalf("record after a heartbeat without static fields: %+v", ws[0])
	}
	if got := types(rec.take()); got != "hive_telemetry" {
		t.Fatalf("events %s, want telemetry only", got)
	}
	// The limit changes behind the hive's back: the hive sends the new
	// static fields, and that is a worker_changed.
	a.CPULimitPct = f(400)
	evs := func() []Event { mustIngest(t, r, hb("h1", "s1", 3, a)); return rec.take() }()
	if types(evs) != "worker_changed,hive_telemetry" || *evs[0].Data.(api.WorkerChanged).Worker.CPULimitPct != 400 {
		t.Fatalf("events %s", types(evs))
	}
	// The same static fields again change nothing.
	mustIngest(t, r, hb("h1", "s1", 4, a))
	if got := types(rec.take()); got != "hive_telemetry" {
		t.Fatalf("events %s", got)
	}
	// A worker new to the registry, without its static fields (the queen
	// restarted): it waits, and the queen asks for them.
	b := hb("h1", "s1", 5, a, wk("b", "m", 11, 1, 0))
	b.Workers[1].Static = nil
	if res := mustIngest(t, r, b); !res.NeedStatic || len(r.Workers(Filter{})) != 1 {
		t.Fatalf("a worker without static fields: need %v, workers %d", res.NeedStatic, len(r.Workers(Filter{})))
	}
	// After a hive restart nothing held counts.
	restart := hb("h1", "s2", 1, a)
	restart.Workers[0].Static = nil
	if res := mustIngest(t, r, restart); !res.NeedStatic {
		t.Fatal("a restarted hive's worker without static fields was taken")
	}
	// A hive the registry does not know, speaking on in its session
	// without static fields (it was removed after the TTL, or the queen
	// restarted): nothing is taken, and no hive_online without workers goes
	// out; once it sends them, one hive_online carries every worker.
	rec.take()
	gone := hb("h2", "s9", 40, a)
	gone.Workers[0].Static = nil
	if res := mustIngest(t, r, gone); !res.NeedStatic || res.New {
		t.Fatalf("unknown hive without static fields: %+v", res)
	}
	if _, ok := r.Hive("h2"); ok || len(rec.take()) != 0 {
		t.Fatal("an unknown hive without static fields was taken")
	}
	mustIngest(t, r, hb("h2", "s9", 41, a))
	evs = rec.take()
	if types(evs) != "hive_online,hive_telemetry" || len(evs[0].Data.(api.HiveOnline).Hive.Workers) != 1 {
		t.Fatalf("events %s", types(evs))
	}
}

// hive_telemetry is compact: numbers only, rounded, a few KiB for a
// 100-worker hive; and it is not built when no one listens.
func TestTelemetryCompact(t *testing.T) {
	listening := false
	rec := &recorder{}
	r := New(Config{Publish: rec.publish, Telemetry: func() bool { return listening }, HeartbeatRate: 1e6, HeartbeatBurst: 1e6})
	var ws []api.Worker
	for i := range 100 {
		w := wk(fmt.Sprintf("w%03d", i), "meta-llama/Llama-3.1-8B-Instruct", 1000+i, 33.333333, 0)
		w.Args = []string{"--model", "meta-llama/Llama-3.1-8B-Instruct", "--port", fmt.Sprint(9000 + i)}
		w.MemBytes, w.MemRSSBytes, w.MemWorkingSetBytes = u(268435456), u(260046848), u(262144000)
		w.IOReadBps, w.IOWriteBps, w.UptimeS = f(0), f(1048576.4), f(3725.8)
		ws = append(ws, w)
	}
	mustIngest(t, r, hb("h1", "s1", 1, ws...))
	for _, e := range rec.take() {
		if e.Type == api.EventHiveTelemetry {
			t.Fatal("telemetry built with no one listening")
		}
	}
	listening = true
	mustIngest(t, r, hb("h1", "s1", 2, ws...))
	evs := rec.take()
	if len(evs) != 1 || evs[0].Type != api.EventHiveTelemetry {
		t.Fatalf("events %s", types(evs))
	}
	b, err := json.Marshal(evs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hive_telemetry of a 100-worker hive: %d bytes", len(b))
	if len(b) > 12<<10 {
		t.Fatalf("hive_telemetry of 100 workers is %d bytes, want at most 12 KiB", len(b))
	}
	var back api.HiveTelemetry
	if err := json.Unmarshal(b, &back); err != nil || len(back.Workers) != 100 || back.Workers[0].Stats[api.StatCPUPct] != 33.3 ||
		back.Workers[0].Stats[api.StatIOWriteBps] != 1048576 || !math.IsNaN(back.Workers[0].Stats[api.StatVRAMBytes]) {
		t.Fatalf("telemetry round trip: %v %+v", err, back.Workers[0])
	}
	if slices.Contains(evs[0].Models, "") || !slices.Equal(evs[0].Models, []string{"meta-llama/Llama-3.1-8B-Instruct"}) {
		t.Fatalf("models %v", evs[0].Models)
	}
}

func TestHiveOnlineSize(t *testing.T) {
	rec := &recorder{}
	r := New(Config{Publish: rec.publish, HeartbeatRate: 1e6, HeartbeatBurst: 1e6})
	h := loadgen.NewHive("h1", 100, 8)
	mustIngest(t, r, h.Next())
	for _, e := range rec.take() {
		b, _ := json.Marshal(e.Data)
		t.Logf("%s %d bytes", e.Type, len(b))
		if e.Type == "hive_online" {
			t.Logf("%s", b[:3000])
		}
	}
}

// Two hives with one id do not take it from each other every second: the
// second, at another address, is refused while the first is online; a
// restart at the same address is not; a hive that moved is taken once
// the old one is stale.
func TestHiveIDInUse(t *testing.T) {
	r, c, rec := newReg()
	mustIngest(t, r, hb("vm", "s1", 1, wk("a", "m", 10, 1, 0)))
	other := hb("vm", "s2", 1)
	other.HiveURL = "http://127.0.0.1:7836"
	if _, err := r.Ingest(other); !errors.Is(err, ErrHiveIDInUse) || !strings.Contains(err.Error(), "http://vm:7835") {
		t.Fatalf("a second hive with the id: %v", err)
	}
	if hv, _ := r.Hive("vm"); hv.SessionID != "s1" || len(hv.Workers) != 0 && hv.Workers[0].ID != "llm-a" || r.Stats().IDInUse != 1 {
		t.Fatalf("the first hive after the refusal: %+v, stats %+v", hv, r.Stats())
	}
	rec.take()
	// The first hive restarts where it was: a new session, accepted.
	if res := mustIngest(t, r, hb("vm", "s3", 1, wk("a", "m", 10, 1, 0))); !res.Restarted {
		t.Fatalf("restart at the same address: %+v", res)
	}
	// It stops; the other is taken once it is stale.
	c.add(3100 * time.Millisecond)
	r.Sweep()
	other.Seq = 2
	if res, err := r.Ingest(other); err != nil || !res.Restarted {
		t.Fatalf("the other hive after the first went stale: %+v, %v", res, err)
	}
}
