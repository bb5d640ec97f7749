package api

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStatsJSON(t *testing.T) {
	s := UnknownStats()
	s[StatCPUPct], s[StatMemBytes], s[StatIOWriteBps], s[StatGPUUtilPct] = 51.26, 268435456, 1048576.6, 99.96
	b, err := json.Marshal(s)
	// Trailing unknowns are left out.
	if err != nil || string(b) != "[51.3,268435456,null,null,null,1048577,null,null,100]" {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	s[StatCPUSeconds] = 12.3456
	if b, err := json.Marshal(s); err != nil || string(b) != "[51.3,268435456,null,null,null,1048577,null,null,100,12.346]" {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var back Stats
	if err := json.Unmarshal(b, &back); err != nil || back[StatCPUPct] != 51.3 || !math.IsNaN(back[StatUptimeS]) {
		t.Fatalf("Unmarshal = %v, %v", back, err)
	}
	// Fewer elements leave the rest unknown; more are refused.
	if err := json.Unmarshal([]byte("[1,2]"), &back); err != nil || back[StatMemBytes] != 2 || back.Known(StatUptimeS) {
		t.Fatalf("short array: %v %v", back, err)
	}
	tooLong := "[1" + strings.Repeat(",1", int(NumStats)) + "]" // one more than there are stats
	for _, bad := range []string{tooLong, `["1"]`, "{}", "[1,]", "[1e999]"} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
	// Absurd values survive the trip (for the queen to refuse them).
	s[StatCPUPct] = -1e308
	if b, err := json.Marshal(s); err != nil || !strings.HasPrefix(string(b), "[-1e+308,") {
		t.Fatalf("huge value: %s %v", b, err)
	}
}

func TestReportRoundTrip(t *testing.T) {
	m, code := "qwen", 3
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := Worker{
		ID:           "llm-1",
		PID:          7,
		PIDs:         []int{7, 8},
		State:        StateExited,
		CPUPct:       Ptr(12.3),
		MemBytes:     Ptr(uint64(1 << 20)),
		GPUs:         []WorkerGPU{{Index: 1, UUID: "GPU-b", VRAMBytes: Ptr(uint64(4 << 30))}},
		VRAMBytes:    Ptr(uint64(4 << 30)),
		Errors:       []string{"x"},
		WorkerStatic: WorkerStatic{Group: "llm", Instance: "1", Binary: "/w", Args: []string{"--model", m}, Model: &m, StartedAt: &start},
		WorkerExit:   WorkerExit{ExitCode: &code},
	}
	r := ReportOf(&w, true)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back WorkerReport
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	st := back.Static
	back.Static = nil
	got := back.Record(st, func(i int) string { return map[int]string{1: "GPU-b"}[i] })
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("round trip\n got %s\nwant %s", gb, wb)
	}
	lean := ReportOf(&w, false)
	if lean.Static != nil {
		t.Fatal("static fields without being asked")
	}
	if again := lean.Record(st, nil).WorkerStatic; !st.Equal(&again) {
		t.Fatal("the static fields of a rebuilt record differ")
	}
}

func FuzzStats(f *testing.F) {
	for _, s := range []string{"[51.3,268435456,null,null,null,1048577,null,null,100]", "[]", "[null]", "[1e308,-1]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Stats
		if json.Unmarshal(b, &s) != nil {
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("Marshal of %v: %v", s, err)
		}
		var back Stats
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("round trip of %s: %v", out, err)
		}
		var g GPUStat
		_ = json.Unmarshal(b, &g)
		var n NodeGPUStat
		_ = json.Unmarshal(b, &n)
	})
}

// fastNum agrees with strconv.ParseFloat wherever it answers, and answers
// for what hives write.
func FuzzFastNum(f *testing.F) {
	for _, s := range []string{"0", "-0", "43.2", "2576980377", "999999999999999", "0.1", "01", "1.", ".5", "-", "1e5", "123456789012.345"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := fastNum([]byte(s))
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || !jsonNumber([]byte(s)) {
			t.Fatalf("fastNum(%q) = %v, but it is not a JSON number (%v)", s, v, err)
		}
		if v != want || math.Signbit(v) != math.Signbit(want) {
			t.Fatalf("fastNum(%q) = %v, ParseFloat %v", s, v, want)
		}
	})
}

func TestAppendNumMatchesFloatFormatting(t *testing.T) {
	for _, v := range []float64{0, 0.04, -0.04, 43.25, 43.2, 99.95, -12.34, 1e11, 2576980377.6, 0.5, 1.5, -1.5, 1234.5678, 0.0005, 7.001, -3.0406} {
		for decimals := range 4 {
			p := math.Pow(10, float64(decimals))
			want := strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64)
			if want == "-0" {
				want = "0"
			}
			if got := string(appendNum(nil, v, decimals)); got != want {
				t.Errorf("appendNum(%v, %d decimals) = %s, want %s", v, decimals, got, want)
			}
		}
	}
}

// HiveTelemetry's hand-written JSON is what encoding/json writes.
func TestHiveTelemetryJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 29, 15, 4, 5, 123456789, time.UTC)
	cpu, mem := 12.5, uint64(1<<40)
	tiny := 1e-9
	for _, tel := range []HiveTelemetry{
		{HiveID: "gpu-1", At: at, SentAt: at.Add(-time.Millisecond), StatFields: StatFields[:],
			Node: NodeStats{CPUPct: &cpu, MemUsedBytes: &mem, GPUs: []NodeGPUStat{{Index: 0, VRAMUsedBytes: 1 << 30, UtilPct: 55.5, TempC: 40, PowerW: math.NaN()}}, Errors: []string{`gpu: "nvml" <failed> & more`, "é\x01"}},
			Workers: []WorkerTelemetry{
				{ID: "llm-9301", State: StateReady, Stats: Stats{51.34, 2 << 30, math.NaN(), 1, 2, 3, 4, 5, 6}, GPUs: []GPUStat{{0, 8 << 30, 12.3}}},
				{ID: "llm-9302", State: StateExited, Stats: UnknownStats()},
			}},
		{HiveID: "empty", Node: NodeStats{CPUPct: &tiny}, StatFields: StatFields[:]},
		{HiveID: "no-workers", Node: NodeStats{GPUs: []NodeGPUStat{}}, Workers: []WorkerTelemetry{}},
	} {
		type plain HiveTelemetry // without the method
		want, err := json.Marshal(plain(tel))
		if err != nil {
			t.Fatal(err)
		}
		if got := tel.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
		}
	}
}

func TestServeAddr(t *testing.T) {
	for _, tc := range []struct {
		hive, inst string
		args       []string
		want       string
	}{
		{"http://10.0.0.5:7835", "a", []string{"--model", "m", "--port", "9301"}, "10.0.0.5:9301"},
		{"https://gpu-07:7835", "a", []string{"--port=8000"}, "gpu-07:8000"},
		{"http://[fd00::5]:7835", "9401", nil, "[fd00::5]:9401"}, // the instance, by convention
		{"http://10.0.0.5:7835", "a", []string{"--port", "http"}, ""},
		{"http://10.0.0.5:7835", "70000", nil, ""},
		{"http://10.0.0.5:7835", "a", []string{"--port"}, ""},
		{"", "9301", nil, ""},
	} {
		w := Worker{WorkerStatic: WorkerStatic{Instance: tc.inst, Args: tc.args}}
		if got := ServeAddr(tc.hive, &w); got != tc.want {
			t.Errorf("ServeAddr(%q, %q %q) = %q, want %q", tc.hive, tc.inst, tc.args, got, tc.want)
		}
	}
}
