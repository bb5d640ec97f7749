package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
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

// Bounds on the text the GPU layer takes from nvidia-smi and NVML: NVML's
// own buffers for a name and a UUID are 96 bytes
// (NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE), so
// anything longer is not what a driver printed. Both are below what the
// queen accepts (registry.validNode), so a cleaned GPU is never refused
// there.
const (
	maxNameLen = 96
	maxUUIDLen = 96
	// maxErrText bounds a driver's own words quoted in an error.
	maxErrText = 160
)

// gpuName is a GPU's name as rbee keeps it: the driver's text with control
// characters and invalid UTF-8 replaced and cut to maxNameLen. The name
// ends up in /metrics labels, the dashboard and terminals, and Prometheus
// escapes only \, " and newline there: an ESC or a bidirectional
// override in it would reach whoever reads the exposition in a terminal.
func gpuName(s string) string { return ids.Clean(strings.TrimSpace(s), maxNameLen) }

// validUUID checks a GPU UUID's shape: "GPU-" or "MIG-" and then letters,
// digits, '-' and '/' (hex groups in current drivers; older MIG UUIDs read
// "MIG-GPU-<uuid>/<gi>/<ci>"), at most maxUUIDLen bytes. A UUID is an
// identifier, not text to show: processes are matched to GPUs by it and
// the scheduler answers with it, so one holding anything else is refused
// as malformed output rather than cleaned (a cleaned UUID could match
// another GPU's, or no process's).
func validUUID(s string) error {
	if len(s) > maxUUIDLen {
		return fmt.Errorf("longer than %d bytes", maxUUIDLen)
	}
	rest, ok := strings.CutPrefix(s, "GPU-")
	if !ok {
		rest, ok = strings.CutPrefix(s, "MIG-")
	}
	if !ok || rest == "" {
		return errors.New(`want "GPU-…" or "MIG-…"`)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '/') {
			return fmt.Errorf("byte %q not allowed (want letters, digits, - and /)", c)
		}
	}
	return nil
}

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
		if err := validUUID(f[1]); err != nil {
			return nil, fmt.Errorf("line %d: uuid %q: %w", i+1, clip(f[1]), err)
		}
		g := api.GPU{Index: idx, UUID: f[1], Name: gpuName(f[2])}
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
		if g.VRAMTotalBytes, err = mibBytes(total); err != nil {
			return nil, fmt.Errorf("line %d: memory.total: %w", i+1, err)
		}
		if g.VRAMUsedBytes, err = mibBytes(used); err != nil {
			return nil, fmt.Errorf("line %d: memory.used: %w", i+1, err)
		}
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

// parseComputeApps parses --query-compute-apps=pid,process_name,
// used_memory,gpu_uuid output, with or without header and units. A process
// name may itself hold ", ", so the pid is taken from the front and the
// memory and uuid from the back. The process name is not kept (workers are
// named by their own records), so none of its text leaves the parser.
// Empty output means no processes.
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
		usedBytes, err := mibBytes(used)
		if err != nil {
			return nil, fmt.Errorf("line %d: used_memory: %w", i+1, err)
		}
		uuid := f[len(f)-1]
		if err := validUUID(uuid); err != nil {
			return nil, fmt.Errorf("line %d: gpu_uuid %q: %w", i+1, clip(uuid), err)
		}
		out = append(out, appRow{pid: pid, usedBytes: usedBytes, uuid: uuid})
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
// Only numbers are kept: the command column's text never leaves it.
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
// "[Not Supported]" (and friends in brackets) are nil. Only finite values
// are numbers: ParseFloat takes "inf", and an infinite reading would make
// every heartbeat fail to encode (JSON has no infinity).
func number(s, unit string) (*float64, error) {
	s = strings.TrimSpace(s)
	if s == "-" || strings.HasPrefix(s, "[") {
		return nil, nil
	}
	if unit != "" {
		s = strings.TrimSpace(strings.TrimSuffix(s, unit))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, fmt.Errorf("value %q is not a number", clip(s))
	}
	return &v, nil
}

// maxMiB is the largest MiB figure whose bytes fit a uint64; above it the
// conversion would wrap to a made-up number.
const maxMiB = float64(math.MaxUint64 >> 20)

// mibBytes converts a MiB reading to bytes (nil stays nil).
func mibBytes(v *float64) (*uint64, error) {
	if v == nil {
		return nil, nil
	}
	if *v >= maxMiB {
		return nil, fmt.Errorf("%g MiB out of range", *v)
	}
	b := uint64(*v * mib)
	return &b, nil
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
