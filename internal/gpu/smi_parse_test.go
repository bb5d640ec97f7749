package gpu

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func capture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "h200-driver-580", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const h200 = "GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e"

func TestParseQueryGPUCaptures(t *testing.T) {
	tests := []struct {
		file              string
		used, util, temp  float64
		power             float64
		totalMiB, usedMiB uint64
	}{
		{"query-gpu-busy.csv", 5377, 100, 59, 691.28, 143771, 5377},
		{"query-gpu-idle.csv", 0, 0, 36, 78.43, 143771, 0},
		{"query-gpu-idle-with-units.csv", 0, 0, 36, 78.44, 143771, 0},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			gs, err := ParseQueryGPU(capture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(gs) != 1 {
				t.Fatalf("%d GPUs, want 1", len(gs))
			}
			g := gs[0]
			if g.Index != 0 || g.UUID != h200 || g.Name != "NVIDIA H200" {
				t.Fatalf("identity %+v", g)
			}
			if *g.VRAMTotalBytes != tc.totalMiB<<20 || *g.VRAMUsedBytes != tc.usedMiB<<20 {
				t.Fatalf("vram total %d used %d", *g.VRAMTotalBytes, *g.VRAMUsedBytes)
			}
			if *g.UtilPct != tc.util || *g.TempC != tc.temp || *g.PowerW != tc.power {
				t.Fatalf("util %v temp %v power %v", *g.UtilPct, *g.TempC, *g.PowerW)
			}
		})
	}
}

func TestParseQueryGPUEdgeCases(t *testing.T) {
	gs, err := ParseQueryGPU([]byte("0, GPU-a, Tesla T4, 15360, 0, 15100, [N/A], 0, 30, [Not Supported]\n1, GPU-b, Tesla T4, 15360, 5, 15095, 7, 0, 31, 27.10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].UtilPct != nil || gs[0].PowerW != nil || *gs[1].PowerW != 27.10 {
		t.Fatalf("N/A values must be nil and the second GPU parsed: %+v", gs)
	}
	for _, bad := range []string{
		"0, GPU-a, H200, 1, 2, 3, 4, 5, 6\n",       // 9 fields
		"x, GPU-a, H200, 1, 2, 3, 4, 5, 6, 7\n",    // bad index
		"0, nope, H200, 1, 2, 3, 4, 5, 6, 7\n",     // bad uuid
		"0, GPU-a, H200, lots, 2, 3, 4, 5, 6, 7\n", // bad number
		"0, GPU-a, H200, -1, 2, 3, 4, 5, 6, 7\n",   // negative
		"No devices were found\n",                  // error text on stdout
		"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
	} {
		if gs, err := ParseQueryGPU([]byte(bad)); err == nil {
			t.Errorf("ParseQueryGPU(%q) = %+v, want error", bad, gs)
		}
	}
	if gs, err := ParseQueryGPU(nil); err != nil || len(gs) != 0 {
		t.Errorf("empty output: %v %v", gs, err)
	}
}

func TestParseComputeAppsCaptures(t *testing.T) {
	for _, file := range []string{"query-compute-apps-busy.csv", "query-compute-apps-busy-with-units.csv"} {
		t.Run(file, func(t *testing.T) {
			rows, err := parseComputeApps(capture(t, file))
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0].pid != 670 || *rows[0].usedBytes != 3786<<20 || rows[1].pid != 671 || *rows[1].usedBytes != 1576<<20 || rows[1].uuid != h200 {
				t.Fatalf("rows %+v", rows)
			}
		})
	}
	t.Run("idle capture is empty", func(t *testing.T) {
		rows, err := parseComputeApps(capture(t, "query-compute-apps-idle.csv"))
		if err != nil || len(rows) != 0 {
			t.Fatalf("idle: %v %v", rows, err)
		}
	})
	t.Run("process name with commas", func(t *testing.T) {
		rows, err := parseComputeApps([]byte("9, /opt/a, b/server, 12, " + h200 + "\n"))
		if err != nil || len(rows) != 1 || rows[0].pid != 9 || *rows[0].usedBytes != 12<<20 {
			t.Fatalf("%+v %v", rows, err)
		}
	})
	for _, bad := range []string{"670, python3, 3786\n", "0, p, 1, " + h200 + "\n", "670, p, x, " + h200 + "\n", "670, p, 1, nope\n"} {
		if rows, err := parseComputeApps([]byte(bad)); err == nil {
			t.Errorf("parseComputeApps(%q) = %+v, want error", bad, rows)
		}
	}
}

func TestParsePmonCapture(t *testing.T) {
	rows, err := parsePmon(capture(t, "pmon-busy.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].pid != 670 || rows[0].sm == nil || *rows[0].sm != 99 || rows[1].pid != 671 || rows[1].sm != nil {
		t.Fatalf("rows %+v (pid 671 must have no SM value: pmon prints -)", rows)
	}
	// -s u has fewer columns: the header decides.
	su := "# gpu         pid   type     sm    mem    enc    dec    jpg    ofa    command \n# Idx           #    C/G      %      %      %      %      %      %    name \n    1        12     C     40      3      -      -      -      -    vllm\n    0         -     -      -      -      -      -      -      -    -\n"
	rows, err = parsePmon([]byte(su))
	if err != nil || len(rows) != 1 || rows[0].gpu != 1 || *rows[0].sm != 40 {
		t.Fatalf("-s u: %+v %v", rows, err)
	}
	for _, bad := range []string{"    0  670  C  99\n", "# gpu pid type sm\n    0  x  C  99\n", "# gpu pid type sm\n    0  7  C  lots\n"} {
		if rows, err := parsePmon([]byte(bad)); err == nil {
			t.Errorf("parsePmon(%q) = %+v, want error", bad, rows)
		}
	}
}

// The fuzz targets check that no control character, invalid UTF-8 or
// over-long text survives in any text of a parsed result, its error
// included (errors become workers' and the host's errors, shown in
// terminals), and that every number is finite.

func FuzzParseQueryGPU(f *testing.F) {
	f.Add(string(mustRead("query-gpu-busy.csv")))
	f.Add(string(mustRead("query-gpu-idle-with-units.csv")))
	for _, h := range hostileText {
		f.Add("0, " + h200 + ", " + h.s + ", 143771, 5377, 137904, 100, 3, 59, 691.28\n")
		f.Add("0, GPU-" + h.s + ", NVIDIA H200, 143771, 5377, 137904, 100, 3, 59, 691.28\n")
	}
	f.Fuzz(func(t *testing.T, s string) {
		gs, err := ParseQueryGPU([]byte(s))
		if err != nil {
			checkText(t, "error", err.Error(), 1024)
			return
		}
		checkGPUs(t, gs)
	})
}

func FuzzParseComputeApps(f *testing.F) {
	f.Add(string(mustRead("query-compute-apps-busy.csv")))
	f.Add(string(mustRead("query-compute-apps-busy-with-units.csv")))
	for _, h := range hostileText {
		f.Add("670, " + h.s + ", 3786, " + h200 + "\n")
		f.Add("670, python3, 3786, GPU-" + h.s + "\n")
	}
	f.Fuzz(func(t *testing.T, s string) {
		rows, err := parseComputeApps([]byte(s))
		if err != nil {
			checkText(t, "error", err.Error(), 1024)
			return
		}
		for _, r := range rows {
			if r.pid <= 0 {
				t.Fatalf("accepted pid %d", r.pid)
			}
			checkText(t, "uuid", r.uuid, maxUUIDLen)
			if err := validUUID(r.uuid); err != nil {
				t.Fatalf("accepted uuid %q: %v", r.uuid, err)
			}
		}
	})
}

func FuzzParsePmon(f *testing.F) {
	f.Add(string(mustRead("pmon-busy.txt")))
	for _, h := range hostileText {
		f.Add("# gpu pid type sm mem command\n    0  670  C  99  3  " + h.s + "\n")
	}
	f.Fuzz(func(t *testing.T, s string) {
		rows, err := parsePmon([]byte(s))
		if err != nil {
			checkText(t, "error", err.Error(), 1024)
			return
		}
		for _, r := range rows {
			if r.pid <= 0 || r.sm != nil && (*r.sm < 0 || math.IsInf(*r.sm, 0)) {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}

func mustRead(name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "h200-driver-580", name))
	if err != nil {
		panic(err)
	}
	return b
}
