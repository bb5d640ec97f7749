package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The compact forms of a worker's telemetry. A heartbeat and a
// hive_telemetry event carry, per worker, only what changes every pass:
// its state, pids and measured numbers (Stats, as one JSON array whose
// order is StatFields), per-GPU use (GPUStat, as [index, vram, sm]). What
// changes rarely (WorkerStatic: identity, command line, cgroup, limits,
// start time) travels when new or changed.

// MarshalJSON writes [cpu,mem,...]: percentages to 0.1, CPU seconds to
// 0.001, everything else as a whole number, null for unknown.
func (s Stats) MarshalJSON() ([]byte, error) { return s.AppendJSON(nil), nil }

// AppendJSON appends Stats' JSON to b. Trailing unknowns are left out
// (the reader takes a shorter array as unknown to its end).
func (s Stats) AppendJSON(b []byte) []byte {
	n := len(s)
	for n > 0 && math.IsNaN(s[n-1]) {
		n--
	}
	b = append(b, '[')
	for i, v := range s[:n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNum(b, v, StatTable[i].Decimals)
	}
	return append(b, ']')
}

// whole and tenths are appendNum's usual precisions.
const (
	whole  = 0
	tenths = 1
)

// appendNum appends v: null when NaN, else rounded to decimals places
// (0 to 3), trailing zeros dropped.
func appendNum(b []byte, v float64, decimals int) []byte {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return append(b, "null"...)
	case math.Abs(v)*pow10[decimals] >= 1e15:
		// Beyond any measurement: written as is (and refused by the queen).
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case decimals == 0:
		return strconv.AppendInt(b, int64(math.Round(v)), 10)
	}
	// Integer arithmetic: the float formatter costs several times more,
	// and the queen writes a dozen numbers a worker a second per hive.
	scale := int64(pow10[decimals])
	t := int64(math.Round(v * float64(scale)))
	if t < 0 {
		b = append(b, '-')
		t = -t
	}
	b = strconv.AppendInt(b, t/scale, 10)
	frac := t % scale
	if frac == 0 {
		return b
	}
	b = append(b, '.')
	for d := scale / 10; d > 0 && frac > 0; d /= 10 {
		b = append(b, byte('0'+frac/d))
		frac %= d
	}
	return b
}

// UnmarshalJSON reads the array MarshalJSON writes. It takes fewer
// elements (the rest are unknown), and refuses more.
func (s *Stats) UnmarshalJSON(b []byte) error {
	*s = UnknownStats()
	_, err := parseNums(b, s[:], "stats")
	return err
}

// parseNums reads a JSON array of numbers or nulls (NaN) into dst, and
// returns how many there were; more than len(dst) is an error.
func parseNums(b []byte, dst []float64, what string) (int, error) {
	b = trimJSONSpace(b)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return 0, fmt.Errorf("%s: want an array of numbers", what)
	}
	// One pass over the elements, each up to its comma: the queen reads
	// 1,600 of them per heartbeat of 100 workers.
	body := b[1 : len(b)-1]
	i := skipJSONSpace(body, 0)
	n := 0
	for i < len(body) {
		j := i
		for j < len(body) && body[j] != ',' {
			j++
		}
		tok := trimJSONSpace(body[i:j])
		if n == len(dst) {
			return n, fmt.Errorf("%s: more than %d numbers", what, len(dst))
		}
		if string(tok) == "null" {
			dst[n] = math.NaN()
		} else {
			v, ok := fastNum(tok)
			if !ok {
				var err error
				v, err = strconv.ParseFloat(string(tok), 64)
				if err != nil || math.IsInf(v, 0) || !jsonNumber(tok) {
					return n, fmt.Errorf("%s: %q is not a number", what, tok)
				}
			}
			dst[n] = v
		}
		n++
		if j == len(body) {
			break
		}
		if i = skipJSONSpace(body, j+1); i == len(body) {
			return n, fmt.Errorf("%s: trailing comma", what)
		}
	}
	return n, nil
}

// skipJSONSpace returns the first position at or after i in b that is
// not JSON whitespace.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// trimJSONSpace drops the whitespace JSON allows (space, tab, CR, LF)
// from both ends: bytes.TrimSpace also drops what JSON does not allow
// (\v, U+0085, U+00A0), and costs more on the queen's hot path.
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// fastNum parses the numbers a hive writes (an optional minus, at most 15
// digits, at most one decimal point, no exponent) exactly as
// strconv.ParseFloat does: both the digits and the power of ten are exact
// in a float64, so one correctly rounded division gives the nearest
// float. Anything else is left to ParseFloat (ok false).
func fastNum(b []byte) (float64, bool) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		neg, i = true, 1
	}
	if i == len(b) || len(b)-i > 16 {
		return 0, false
	}
	var m uint64
	digits, frac, dot := 0, 0, false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if dot {
				frac++
			}
		case c == '.' && !dot && digits > 0:
			dot = true
		default:
			return 0, false
		}
	}
	// JSON forbids leading zeros ("01") and a bare trailing point.
	start := 0
	if neg {
		start = 1
	}
	if digits == 0 || digits > 15 || dot && frac == 0 || b[start] == '0' && digits-frac > 1 {
		return 0, false
	}
	v := float64(m) / pow10[frac]
	if neg {
		v = -v
	}
	return v, true
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// jsonNumber reports whether b is a number as JSON writes them (which
// ParseFloat's syntax is wider than: "0x1p3", "Inf", "1_000", "+1").
func jsonNumber(b []byte) bool {
	return json.Valid(b) && len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9')
}

// GPUStat is a worker's use of one GPU: [index, vram_bytes, sm_util_pct].
type GPUStat struct {
	Index     int
	VRAMBytes float64 // NaN: unknown
	SMUtilPct float64 // NaN: the driver reported none
}

// MarshalJSON writes [index, vram, sm].
func (g GPUStat) MarshalJSON() ([]byte, error) { return g.AppendJSON(nil), nil }

// AppendJSON appends the GPUStat's JSON to b.
func (g GPUStat) AppendJSON(b []byte) []byte {
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(g.Index), 10)
	b = append(b, ',')
	b = appendNum(b, g.VRAMBytes, whole)
	b = append(b, ',')
	b = appendNum(b, g.SMUtilPct, tenths)
	return append(b, ']')
}

// UnmarshalJSON reads [index, vram, sm].
func (g *GPUStat) UnmarshalJSON(b []byte) error {
	var vals [3]float64
	n, err := parseNums(b, vals[:], "gpu")
	if err != nil {
		return err
	}
	if n != 3 || math.IsNaN(vals[0]) || vals[0] != math.Trunc(vals[0]) || vals[0] < 0 || vals[0] > math.MaxInt32 {
		return errors.New("gpu: want [index, vram_bytes, sm_util_pct]")
	}
	*g = GPUStat{Index: int(vals[0]), VRAMBytes: vals[1], SMUtilPct: vals[2]}
	return nil
}

// WorkerStatic is what a worker's record holds that changes rarely: it
// travels in a heartbeat only when new or changed.
type WorkerStatic struct {
	Group    string   `json:"group"`
	Instance string   `json:"instance"`
	Binary   string   `json:"binary"`
	Args     []string `json:"args"`
	Model    *string  `json:"model"`
	// Cgroup is the worker's cgroup path; empty when limits are not
	// enforced.
	Cgroup         string     `json:"cgroup,omitempty"`
	LimitsEnforced bool       `json:"limits_enforced"`
	StartedAt      *time.Time `json:"started_at"`
	CPULimitPct    *float64   `json:"cpu_limit_pct"`
	MemLimitBytes  *int64     `json:"mem_limit_bytes"`
	PidsLimit      *int64     `json:"pids_limit,omitempty"`
	// Restarts counts the hive's restarts of this worker; LastExit is how
	// the run before this one ended; RestartError says why the hive will
	// not restart it again (its restart limit).
	Restarts     int         `json:"restarts"`
	LastExit     *WorkerExit `json:"last_exit,omitempty"`
	RestartError string      `json:"restart_error,omitempty"`
}

// Equal reports whether two statics say the same.
func (s *WorkerStatic) Equal(o *WorkerStatic) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Group == o.Group && s.Instance == o.Instance && s.Binary == o.Binary && slices.Equal(s.Args, o.Args) &&
		eqPtr(s.Model, o.Model) && s.Cgroup == o.Cgroup && s.LimitsEnforced == o.LimitsEnforced &&
		eqTime(s.StartedAt, o.StartedAt) && eqPtr(s.CPULimitPct, o.CPULimitPct) && eqPtr(s.MemLimitBytes, o.MemLimitBytes) &&
		eqPtr(s.PidsLimit, o.PidsLimit) && s.Restarts == o.Restarts && s.RestartError == o.RestartError && (s.LastExit == nil) == (o.LastExit == nil)
}

func eqPtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func eqTime(a, b *time.Time) bool { return a == nil && b == nil || a != nil && b != nil && a.Equal(*b) }

// WorkerExit is how a worker ended.
type WorkerExit struct {
	ExitCode  *int       `json:"exit_code"`
	Signal    *string    `json:"signal"`
	OOMKilled *bool      `json:"oom_killed"`
	ExitedAt  *time.Time `json:"exited_at,omitempty"`
	// Stopped says the exit was asked for.
	Stopped bool `json:"stopped,omitempty"`
	// LogTail is the end of its output (at most 4 KiB), when the hive
	// keeps logs: why it crashed, without a login on the host.
	LogTail string `json:"log_tail,omitempty"`
}

// WorkerReport is one worker in a heartbeat: what changes every pass, and
// Static when the hive sends it (the worker is new or its static fields
// changed, the session is new, or the queen asked).
type WorkerReport struct {
	ID    string    `json:"id"`
	State State     `json:"state"`
	PID   int       `json:"pid"`
	PIDs  PIDList   `json:"pids,omitempty"`
	Stats Stats     `json:"stats"`
	GPUs  []GPUStat `json:"gpus,omitempty"`
	// GPUError says why the GPU numbers are unknown this pass.
	GPUError string      `json:"gpu_error,omitempty"`
	Errors   []string    `json:"errors,omitempty"`
	Exit     *WorkerExit `json:"exit,omitempty"`
	// Health is the worker's health check as last run, while it fails
	// or the worker is not ready: why reaches the queen.
	Health *WorkerHealth `json:"health,omitempty"`
	Static *WorkerStatic `json:"static,omitempty"`
}

// ReportOf returns the heartbeat entry of a worker record, with its
// static part when withStatic.
func ReportOf(w *Worker, withStatic bool) WorkerReport {
	r := WorkerReport{ID: w.ID, State: w.State, PID: w.PID, PIDs: w.PIDs, GPUError: w.GPUError, Errors: w.Errors}
	if h := w.Health; h != nil && (h.Failures > 0 || w.State != StateReady) {
		// Only when it says why a worker is not (or soon not) ready: a
		// passing check's target would repeat in every heartbeat.
		r.Health = h
	}
	r.Stats = w.Stats()
	for _, g := range w.GPUs {
		gs := GPUStat{Index: g.Index, VRAMBytes: math.NaN(), SMUtilPct: math.NaN()}
		if g.VRAMBytes != nil {
			gs.VRAMBytes = float64(*g.VRAMBytes)
		}
		if g.SMUtilPct != nil {
			gs.SMUtilPct = *g.SMUtilPct
		}
		r.GPUs = append(r.GPUs, gs)
	}
	if w.State == StateExited || w.ExitCode != nil || w.Signal != nil {
		e := w.WorkerExit
		r.Exit = &e
	}
	if withStatic {
		st := w.WorkerStatic
		r.Static = &st
	}
	return r
}

// Record builds the full worker record from a report and its static part;
// gpuUUID names a GPU index (the host's view), "" when unknown.
func (r *WorkerReport) Record(st *WorkerStatic, gpuUUID func(int) string) Worker {
	w := Worker{
		ID: r.ID, State: r.State, PID: r.PID, PIDs: r.PIDs, GPUError: r.GPUError, Errors: r.Errors, Health: r.Health,
	}
	// Numbers rounded to what they mean, as on the stream.
	s := r.Stats
	s.Round()
	w.SetStats(&s)
	if st != nil {
		w.WorkerStatic = *st
	}
	if r.GPUs != nil {
		w.GPUs = make([]WorkerGPU, len(r.GPUs))
		for i, g := range r.GPUs {
			wg := WorkerGPU{Index: g.Index}
			if gpuUUID != nil {
				wg.UUID = gpuUUID(g.Index)
			}
			if !math.IsNaN(g.VRAMBytes) {
				v := uint64(g.VRAMBytes)
				wg.VRAMBytes = &v
			}
			if !math.IsNaN(g.SMUtilPct) {
				v := math.Round(g.SMUtilPct*10) / 10
				wg.SMUtilPct = &v
			}
			w.GPUs[i] = wg
		}
	}
	if r.Exit != nil {
		w.WorkerExit = *r.Exit
	}
	return w
}

// NodeGPUStat is a host GPU's numbers, as [index, vram_used_bytes,
// util_pct, temp_c, power_w]; NaN (null) is unknown.
type NodeGPUStat struct {
	Index                                 int
	VRAMUsedBytes, UtilPct, TempC, PowerW float64
}

// MarshalJSON writes [index, vram_used, util, temp, power].
func (g NodeGPUStat) MarshalJSON() ([]byte, error) { return g.AppendJSON(nil), nil }

// AppendJSON appends the NodeGPUStat's JSON to b.
func (g NodeGPUStat) AppendJSON(b []byte) []byte {
	b = append(strconv.AppendInt(append(b, '['), int64(g.Index), 10), ',')
	b = append(appendNum(b, g.VRAMUsedBytes, whole), ',')
	b = append(appendNum(b, g.UtilPct, tenths), ',')
	b = append(appendNum(b, g.TempC, tenths), ',')
	b = appendNum(b, g.PowerW, tenths)
	return append(b, ']')
}

// UnmarshalJSON reads [index, vram_used, util, temp, power].
func (g *NodeGPUStat) UnmarshalJSON(b []byte) error {
	var vals [5]float64
	n, err := parseNums(b, vals[:], "gpu")
	if err != nil {
		return err
	}
	if n != 5 || math.IsNaN(vals[0]) || vals[0] < 0 || vals[0] > math.MaxInt32 {
		return errors.New("gpu: want [index, vram_used_bytes, util_pct, temp_c, power_w]")
	}
	*g = NodeGPUStat{Index: int(vals[0]), VRAMUsedBytes: vals[1], UtilPct: vals[2], TempC: vals[3], PowerW: vals[4]}
	return nil
}

// NodeStatsOf returns the numbers of a host's view.
func NodeStatsOf(n *Node) NodeStats {
	ns := NodeStats{CPUPct: roundPtr(n.CPUPct), MemUsedBytes: n.MemUsedBytes, Errors: n.Errors, GPUs: make([]NodeGPUStat, len(n.GPUs))}
	f := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	for i, g := range n.GPUs {
		vram := math.NaN()
		if g.VRAMUsedBytes != nil {
			vram = float64(*g.VRAMUsedBytes)
		}
		ns.GPUs[i] = NodeGPUStat{Index: g.Index, VRAMUsedBytes: vram, UtilPct: f(g.UtilPct), TempC: f(g.TempC), PowerW: f(g.PowerW)}
	}
	return ns
}

// roundPtr rounds *p to 0.1.
func roundPtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := math.Round(*p*10) / 10
	return &v
}
