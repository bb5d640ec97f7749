package api

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestStatTableMatchesWorker ties each stat to the record's field of its
// name: the right type, and Stat/SetStat read and write that field and
// no other.
func TestStatTableMatchesWorker(t *testing.T) {
	fields := map[string]reflect.Type{}
	wt := reflect.TypeFor[Worker]()
	for i := range wt.NumField() {
		f := wt.Field(i)
		fields[strings.Split(f.Tag.Get("json"), ",")[0]] = f.Type
	}
	seen := map[string]bool{}
	for i, s := range StatTable {
		st := Stat(i)
		if s.Name == "" || seen[s.Name] {
			t.Fatalf("stat %d: name %q empty or repeated", i, s.Name)
		}
		seen[s.Name] = true
		want := reflect.TypeFor[*float64]()
		if s.Bytes {
			want = reflect.TypeFor[*uint64]()
		}
		if fields[s.Name] != want {
			t.Errorf("%s: Worker's field is %v, want %v", s.Name, fields[s.Name], want)
		}
		if s.Max <= 0 || s.Decimals < 0 || s.Decimals > 3 || (s.Metric == "") != (s.Help == "") {
			t.Errorf("%s: bad bound %g, decimals %d or metric %q/%q", s.Name, s.Max, s.Decimals, s.Metric, s.Help)
		}
		var w Worker
		if z := w.Stats(); !math.IsNaN(z[st]) {
			t.Errorf("%s: a zero record reads %g, want unknown", s.Name, z[st])
		}
		one := UnknownStats()
		one[st] = 7
		w.SetStats(&one)
		if got := w.Stats(); !sameStats(got, one) {
			t.Errorf("%s: set %v, read %v", s.Name, one, got)
		}
		var m map[string]any
		b, _ := json.Marshal(w)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, o := range StatTable {
			if v := m[o.Name]; (o.Name == s.Name) != (v != nil) || v != nil && v != 7.0 {
				t.Errorf("SetStats with %s 7: %s is %v in %s", s.Name, o.Name, v, b)
			}
		}
	}
	w := Worker{}
	neg := UnknownStats()
	neg[StatMemBytes] = -1
	if w.SetStats(&neg); w.MemBytes != nil {
		t.Error("a negative byte count was kept")
	}
}

func sameStats(a, b Stats) bool {
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}

// TestStatBound checks the scales: per core, per GPU (at least one).
func TestStatBound(t *testing.T) {
	for _, c := range []struct {
		stat        Stat
		cores, gpus int
		want        float64
	}{
		{StatCPUPct, 8, 0, 880},
		{StatGPUUtilPct, 8, 0, 100},
		{StatGPUUtilPct, 8, 4, 400},
		{StatMemBytes, 8, 4, MaxMemBytes},
	} {
		if got := StatTable[c.stat].Bound(c.cores, c.gpus); got != c.want {
			t.Errorf("%s bound on %d cores, %d gpus: %g, want %g", StatFields[c.stat], c.cores, c.gpus, got, c.want)
		}
	}
}

// BenchmarkReportRecord is a worker's way through the queen: the hive's
// ReportOf, the queen's Record.
func BenchmarkReportRecord(b *testing.B) {
	m, code := "qwen", 3
	w := Worker{ID: "llm-1", PID: 7, PIDs: []int{7, 8}, State: StateReady, CPUPct: Ptr(12.34), MemBytes: Ptr(uint64(1 << 30)),
		MemRSSBytes: Ptr(uint64(1 << 29)), MemWorkingSetBytes: Ptr(uint64(1 << 29)), IOReadBps: Ptr(10.0), IOWriteBps: Ptr(20.0),
		UptimeS: Ptr(100.0), VRAMBytes: Ptr(uint64(4 << 30)), GPUUtilPct: Ptr(97.0), CPUSeconds: Ptr(12.5),
		IOReadBytes: Ptr(uint64(4096)), IOWriteBytes: Ptr(uint64(8192)),
		GPUs:         []WorkerGPU{{Index: 1, UUID: "GPU-b", VRAMBytes: Ptr(uint64(4 << 30)), SMUtilPct: Ptr(97.0)}},
		WorkerStatic: WorkerStatic{Group: "llm", Instance: "1", Binary: "/w", Args: []string{"--model", m}, Model: &m},
		WorkerExit:   WorkerExit{ExitCode: &code},
	}
	st := w.WorkerStatic
	b.ReportAllocs()
	for b.Loop() {
		r := ReportOf(&w, false)
		rec := r.Record(&st, nil)
		if rec.CPUPct == nil {
			b.Fatal("lost cpu_pct")
		}
	}
}

// TestWorkerStaticEqualSeesEveryField changes each field of a static in
// turn: Equal must see it, so a field added to WorkerStatic and left out
// of Equal fails here rather than never reaching the queen.
func TestWorkerStaticEqualSeesEveryField(t *testing.T) {
	base := WorkerStatic{}
	typ := reflect.TypeFor[WorkerStatic]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		other := base
		v := reflect.ValueOf(&other).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int:
			v.SetInt(1)
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
		default:
			t.Fatalf("%s: kind %s: teach this test", f.Name, v.Kind())
		}
		if base.Equal(&other) {
			t.Errorf("Equal misses a change of %s", f.Name)
		}
	}
}
