package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

func topWorkers() []api.FleetWorker {
	m, long, evil := "qwen2.5-0.5b", "meta-llama/Llama-3.1-70B-Instruct-FP8-dynamic", "x\x1b[2Jy"
	lim, gib := int64(24<<30), uint64(1<<30)
	w := func(hive, id string, state api.State, cpu float64, mem uint64, restarts int) api.FleetWorker {
		return api.FleetWorker{HiveID: hive, Worker: api.Worker{ID: id, State: state, CPUPct: &cpu, MemBytes: &mem, UptimeS: api.Ptr(3725.0),
			WorkerStatic: api.WorkerStatic{Model: &m, Restarts: restarts}}}
	}
	ws := []api.FleetWorker{
		w("gpu-07", "llm-9301", api.StateReady, 97.5, 20<<30, 0),
		w("gpu-07", "llm-9302", api.StateStarting, 3, 512<<20, 2),
		w("gpu-08", "embed-9401", api.StateUnhealthy, 250.1, 900<<10, 0),
		w("gpu-08", "llm-dead", api.StateExited, 0, 0, 5),
	}
	ws[0].CPULimitPct, ws[0].MemLimitBytes, ws[0].VRAMBytes, ws[0].GPUUtilPct, ws[0].Model = api.Ptr(400.0), &lim, api.Ptr(70*gib), api.Ptr(99.0), &long
	ws[1].VRAMBytes, ws[1].Model = api.Ptr(gib/2), &evil
	ws[2].Model = nil
	return ws
}

// The live view fits the terminal (80 columns at least), busiest first,
// figures beside their limits; exited workers are counted, not shown;
// daemon text is escaped.
func TestTopFrame(t *testing.T) {
	at := time.Date(2026, 12, 5, 17, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		fleet bool
		sort  string
		width int
	}{
		{"top-fleet-80", true, "cpu", 80},
		{"top-fleet-120-vram", true, "vram", 120},
		{"top-hive-80-restarts", false, "restarts", 40}, // under 80 counts as 80
	} {
		frame := TopFrame(TopView{Source: "http://queen:7833", At: at, Workers: topWorkers(), Fleet: tc.fleet, Sort: tc.sort, Width: tc.width})
		for _, line := range strings.Split(frame, "\n") {
			if n := utf8.RuneCountInString(line); n > max(tc.width, 80) {
				t.Errorf("%s: a line of %d columns: %q", tc.name, n, line)
			}
			if strings.ContainsRune(line, 0x1b) {
				t.Errorf("%s: an escape reached the terminal: %q", tc.name, line)
			}
		}
		harness.Golden(t, filepath.Join("testdata", "golden", tc.name+".txt"), []byte(frame))
	}
}

func TestTopSortAndShortBytes(t *testing.T) {
	for in, want := range map[string]string{"cpu": "cpu", "c": "cpu", "v": "vram", "restarts": "restarts", "i": "id"} {
		if got, err := TopSort(in); got != want || err != nil {
			t.Errorf("TopSort(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "cpux", "memory"} {
		if _, err := TopSort(bad); err == nil {
			t.Errorf("TopSort(%q) accepted", bad)
		}
	}
	for v, want := range map[uint64]string{0: "0B", 1023: "1023B", 1536: "1.5K", 512 << 20: "512M", 24 << 30: "24G", 3 << 40: "3.0T"} {
		if got := shortBytes(&v); got != want || len(got) > 5 {
			t.Errorf("shortBytes(%d) = %q, want %q", v, got, want)
		}
	}
}
