package registry

import (
	"encoding/json"
	"strconv"
	"testing"
	"unsafe"

	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/api"
)

// decoded returns hb as the queen has it: through JSON, so every string
// and value is the decoder's own.
func decoded(t *testing.T, hb api.Heartbeat) api.Heartbeat {
	t.Helper()
	b, err := json.Marshal(hb)
	if err != nil {
		t.Fatal(err)
	}
	var out api.Heartbeat
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Workers of two hives alike hold one copy of what their static fields
// say alike; a worker whose static fields change gets its own again, and
// nothing a query returns differs from what the hive sent.
func TestStaticFieldsShared(t *testing.T) {
	r := New(Config{})
	fleet := loadgen.Fleet("alike", 2, 4, 2)
	var sent []api.Heartbeat
	for _, h := range fleet {
		hb := h.Next()
		sent = append(sent, hb)
		mustIngest(t, r, decoded(t, hb))
	}
	a, b := r.hives["alike-0000"].workers[1], r.hives["alike-0001"].workers[1]
	sa, sb := a.static, b.static
	if sa == sb {
		t.Fatal("two workers share one static record")
	}
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	if sa.Model == nil || sa.Model != sb.Model || sa.CPULimitPct != sb.CPULimitPct || sa.MemLimitBytes != sb.MemLimitBytes ||
		!same(sa.Binary, sb.Binary) || !same(sa.Cgroup, sb.Cgroup) || !same(sa.Args[0], sb.Args[0]) || !same(sa.Args[1], sb.Args[1]) {
		t.Errorf("the values the two workers' static fields share are held twice: %+v %+v", sa, sb)
	}
	if a.rep.State != api.StateReady || unsafe.StringData(string(a.rep.State)) != unsafe.StringData(string(api.StateReady)) {
		t.Errorf("state %q is not the constant", a.rep.State)
	}
	if len(a.rep.GPUs) != 1 || cap(a.rep.GPUs) != 1 {
		t.Errorf("gpus: len %d cap %d, want 1 and 1", len(a.rep.GPUs), cap(a.rep.GPUs))
	}
	// What the queen serves is what the hive sent.
	got, _ := r.Hive("alike-0001")
	for i, w := range got.Workers {
		want := sent[1].Workers[i].Static
		if !w.WorkerStatic.Equal(want) {
			t.Errorf("worker %s: static %+v, want %+v", w.ID, w.WorkerStatic, *want)
		}
	}
	// A change is the worker's alone.
	hb := fleet[1].Next()
	st := *sent[1].Workers[1].Static
	lim := int64(1 << 30)
	st.MemLimitBytes = &lim
	hb.Workers[1].Static = &st
	mustIngest(t, r, decoded(t, hb))
	if b2 := r.hives["alike-0001"].workers[1].static; *b2.MemLimitBytes != lim || *sa.MemLimitBytes == lim || b2.Model != sa.Model {
		t.Errorf("after a change: %d (other hive's %d), model shared %v", *b2.MemLimitBytes, *sa.MemLimitBytes, b2.Model == sa.Model)
	}
}

// The shared values are bounded: a stream of distinct ones stops being
// held once the bound is reached, and is kept as it came.
func TestInternerBounded(t *testing.T) {
	in := newInterner()
	for i := range maxInterned + 10 {
		in.str("v" + strconv.Itoa(i))
	}
	if len(in.strs) != maxInterned {
		t.Errorf("%d strings held, want the bound %d", len(in.strs), maxInterned)
	}
	long := string(make([]byte, maxInternedLen+1))
	if got := in.str(long); got != long || len(in.strs) != maxInterned {
		t.Error("a long string was held")
	}
}

// A steady heartbeat updates a hive's worker list in its own memory; a
// list that changes size is right all the same, and the scratch it was
// built in holds nothing afterwards.
func TestWorkerListReused(t *testing.T) {
	r := New(Config{})
	h := loadgen.NewHive("reuse", 4, 1)
	mustIngest(t, r, decoded(t, h.Next()))
	before := &r.hives["reuse"].workers[0]
	hb := decoded(t, h.Next())
	mustIngest(t, r, hb)
	ws := r.hives["reuse"].workers
	if &ws[0] != before {
		t.Error("a steady heartbeat built a new worker list")
	}
	if ws[2].rep.Stats != hb.Workers[2].Stats {
		t.Errorf("worker 2's numbers %v, want the heartbeat's %v", ws[2].rep.Stats, hb.Workers[2].Stats)
	}
	hb = decoded(t, h.Next())
	hb.Workers = hb.Workers[1:3]
	mustIngest(t, r, hb)
	ws = r.hives["reuse"].workers
	if len(ws) != 2 || ws[0].rep.ID != hb.Workers[0].ID || ws[1].rep.ID != hb.Workers[1].ID {
		t.Fatalf("after two workers left: %d workers", len(ws))
	}
	if full := ws[:cap(ws)]; len(full) > 2 && full[2].static != nil {
		t.Error("a worker that left is still held past the list's end")
	}
	for _, w := range r.scratch[:cap(r.scratch)] {
		if w.static != nil || w.rep.ID != "" {
			t.Fatal("the scratch list still holds a worker")
		}
	}
}
