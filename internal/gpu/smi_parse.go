package gpu

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/rbee-dev/rbee/internal/api"
)

// The nvidia-smi invocations, exactly those of the captures in
// testdata/h200-driver-580 (see its README).
var (
	queryGPUFields = "index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu,utilization.memory,temperature.gpu,power.draw"
	queryGPUArgs   = []string{"--query-gpu=" + queryGPUFields, "--format=csv,noheader,nounits"}
	queryAppsArgs  = []string{"--query-compute-apps=pid,process_name,used_memory,gpu_uuid", "--format=csv,noheader,nounits"}
	pmonArgs       = []string{"pmon", "-c", "1", "-s", "um"}
)

const mib = 1 << 20

// maxLines bounds what a parser accepts, so garbage cannot grow memory.
const maxLines = 4096

// ParseQueryGPU parses --query-gpu output for queryGPUFields, with or
// without the header line and units ("143771 MiB", "0 %", "78.44 W").
// Values nvidia-smi cannot report ("[N/A]", "[Not Supported]") are nil.
func ParseQueryGPU(b []byte) ([]api.GPU, error) {
	var out []api.GPU
	for i, line := range splitLines(b) {
		if i >= maxLines {
			return nil, fmt.Errorf("more than %d lines", maxLines)
		}
		f := splitCSV(line)
		if len(f) > 0 && f[0] == "index" {
			continue // header of --format=csv
		}
		if len(f) != 10 {
			return nil, fmt.Errorf("line %d: %d fields, want 10: %q", i+1, len(f), clip(line))
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("line %d: index %q", i+1, clip(f[0]))
		}
		if !strings.HasPrefix(f[1], "GPU-") && !strings.HasPrefix(f[1], "MIG-") {
			return nil, fmt.Errorf("line %d: uuid %q", i+1, clip(f[1]))
		}
		g := api.GPU{Index: idx, UUID: f[1], Name: f[2]}
		var total, used *float64
		for _, p := range []struct {
			s    string
			unit string
			dst  **float64
		}{
			{f[3], "MiB", &total}, {f[4], "MiB", &used}, {f[6], "%", &g.UtilPct},
			{f[8], "", &g.TempC}, {f[9], "W", &g.PowerW},
		} {
			v, err := number(p.s, p.unit)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			*p.dst = v
		}
		g.VRAMTotalBytes, g.VRAMUsedBytes = mibBytes(total), mibBytes(used)
		out = append(out, g)
	}
	return out, nil
}

// appRow is one --query-compute-apps row.
type appRow struct {
	pid       int
	usedBytes *uint64
	uuid      string
}

// ParseComputeApps parses --query-compute-apps=pid,process_name,
// used_memory,gpu_uuid output, with or without header and units. A process
// name may itself hold ", ", so the pid is taken from the front and the
// memory and uuid from the back. Empty output means no processes.
func parseComputeApps(b []byte) ([]appRow, error) {
	var out []appRow
	for i, line := range splitLines(b) {
		if i >= maxLines {
			return nil, fmt.Errorf("more than %d lines", maxLines)
		}
		f := splitCSV(line)
		if len(f) > 0 && f[0] == "pid" {
			continue
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("line %d: %d fields, want 4: %q", i+1, len(f), clip(line))
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("line %d: pid %q", i+1, clip(f[0]))
		}
		used, err := number(f[len(f)-2], "MiB")
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		uuid := f[len(f)-1]
		if !strings.HasPrefix(uuid, "GPU-") && !strings.HasPrefix(uuid, "MIG-") {
			return nil, fmt.Errorf("line %d: gpu_uuid %q", i+1, clip(uuid))
		}
		out = append(out, appRow{pid: pid, usedBytes: mibBytes(used), uuid: uuid})
	}
	return out, nil
}

// pmonRow is one `nvidia-smi pmon` row.
type pmonRow struct {
	gpu int
	pid int
	sm  *float64
}

// parsePmon parses `nvidia-smi pmon -c 1 -s um` (or -s u) output. Columns
// are found by the "# gpu pid type sm ..." header, so the selection of
// metrics can change without breaking the parse; "-" means not reported.
func parsePmon(b []byte) ([]pmonRow, error) {
	lines := splitLines(b)
	gpuCol, pidCol, smCol := -1, -1, -1
	var out []pmonRow
	for i, line := range lines {
		if i >= maxLines {
			return nil, fmt.Errorf("more than %d lines", maxLines)
		}
		if strings.HasPrefix(line, "#") {
			if gpuCol < 0 {
				for j, name := range strings.Fields(strings.TrimPrefix(line, "#")) {
					switch name {
					case "gpu":
						gpuCol = j
					case "pid":
						pidCol = j
					case "sm":
						smCol = j
					}
				}
			}
			continue
		}
		if gpuCol < 0 || pidCol < 0 || smCol < 0 {
			return nil, fmt.Errorf("line %d: no \"# gpu pid ... sm\" header before data", i+1)
		}
		f := strings.Fields(line)
		if len(f) <= max(gpuCol, pidCol, smCol) {
			return nil, fmt.Errorf("line %d: %d fields: %q", i+1, len(f), clip(line))
		}
		if f[pidCol] == "-" {
			continue // a GPU with no process
		}
		g, err1 := strconv.Atoi(f[gpuCol])
		pid, err2 := strconv.Atoi(f[pidCol])
		if err1 != nil || err2 != nil || g < 0 || pid <= 0 {
			return nil, fmt.Errorf("line %d: gpu %q pid %q", i+1, clip(f[gpuCol]), clip(f[pidCol]))
		}
		sm, err := number(f[smCol], "")
		if err != nil {
			return nil, fmt.Errorf("line %d: sm: %w", i+1, err)
		}
		out = append(out, pmonRow{gpu: g, pid: pid, sm: sm})
	}
	return out, nil
}

// number parses a value with an optional unit; "-", "[N/A]" and
// "[Not Supported]" (and friends in brackets) are nil.
func number(s, unit string) (*float64, error) {
	s = strings.TrimSpace(s)
	if s == "-" || strings.HasPrefix(s, "[") {
		return nil, nil
	}
	if unit != "" {
		s = strings.TrimSpace(strings.TrimSuffix(s, unit))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v != v {
		return nil, fmt.Errorf("value %q is not a number", clip(s))
	}
	return &v, nil
}

func mibBytes(v *float64) *uint64 {
	if v == nil {
		return nil
	}
	b := uint64(*v * mib)
	return &b
}

// splitCSV splits nvidia-smi's ", "-separated fields.
func splitCSV(line string) []string {
	f := strings.Split(line, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

func splitLines(b []byte) []string {
	var out []string
	for line := range bytes.Lines(b) {
		if s := strings.TrimSpace(string(line)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
