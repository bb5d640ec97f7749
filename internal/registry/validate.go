package registry

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// ErrInvalid marks a heartbeat the queen refuses as a whole; the message
// names the field.
var ErrInvalid = api.Class(api.ErrInvalid, "invalid heartbeat")

// Bounds on a heartbeat, so one hive cannot make the queen hold unbounded
// data or believe impossible numbers.
const (
	MaxWorkers = 4096
	MaxGPUs    = api.MaxGPUs
	// MaxLogTail bounds the output an exit carries.
	MaxLogTail = 4096
	// MaxPIDsPerWorker and MaxPIDsTotal bound the pid lists of one worker
	// and of a whole heartbeat; the hive clips what it sends to them.
	MaxPIDsPerWorker = api.MaxWorkerPIDs
	MaxPIDsTotal     = api.MaxHeartbeatPIDs
	// MaxCores bounds a hive's cpu_cores.
	MaxCores = 16384
	// MaxGPUBytes, MaxMemBytes and MaxIORate: see package api.
	MaxGPUBytes = api.MaxGPUBytes
	MaxMemBytes = api.MaxMemBytes
	MaxIORate   = api.MaxIORate
	// MaxPID is the kernel's largest pid (PID_MAX_LIMIT).
	MaxPID = 1 << 22
	// FutureSlack is how far ahead of the queen's clock a hive's
	// timestamps may be: clocks drift; they do not drift by an hour.
	FutureSlack = time.Hour

	maxStrLen    = api.MaxArgLen
	maxArgs      = api.MaxWorkerArgs
	maxErrors    = 32
	maxErrorLen  = 512
	minInterval  = 100   // ms
	maxInterval  = 600e3 // ms
	defaultIntMS = 1000
)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Fixes says what Sanitize changed in a heartbeat it accepted: worker
// entries it dropped and values it replaced with null.
type Fixes struct {
	Dropped []api.DroppedWorker
	Clamped []string
}

// Sanitize checks every bound, identifier and number of hb against what is
// possible, as of now (the queen's clock). A heartbeat-level problem
// refuses the whole heartbeat (ErrInvalid). A bad worker entry is dropped,
// with the reason in the report, and the rest is kept; an impossible
// host-level number is replaced with null and noted.
func Sanitize(hb *api.Heartbeat, now time.Time) (Fixes, error) {
	var fixes Fixes
	if err := validHeader(hb); err != nil {
		return fixes, err
	}
	if hb.Node.CPUCores < 1 || hb.Node.CPUCores > MaxCores {
		return fixes, invalid("node.cpu_cores %d: want 1 to %d", hb.Node.CPUCores, MaxCores)
	}
	if len(hb.Node.GPUs) > MaxGPUs {
		return fixes, invalid("node.gpus: %d GPUs, at most %d", len(hb.Node.GPUs), MaxGPUs)
	}
	if len(hb.Node.Errors) > maxErrors {
		return fixes, invalid("node.errors: %d, at most %d", len(hb.Node.Errors), maxErrors)
	}
	if len(hb.Workers) > MaxWorkers {
		return fixes, invalid("workers: %d, at most %d", len(hb.Workers), MaxWorkers)
	}
	pids := 0
	for i := range hb.Workers {
		pids += len(hb.Workers[i].PIDs)
	}
	if pids > MaxPIDsTotal {
		return fixes, invalid("workers hold %d pids in all, at most %d", pids, MaxPIDsTotal)
	}
	if err := ids.ValidText(hb.Node.LimitsReason, maxStrLen); err != nil {
		hb.Node.LimitsReason = ids.Clean(hb.Node.LimitsReason, maxStrLen)
	}
	cleanErrors(hb.Node.Errors)
	validNode(&hb.Node, &fixes)
	// On the hive's clock, as sent_at: a sample taken after the heartbeat
	// was sent, or a day before it, is not one.
	if at := hb.Node.GPUSampledAt; at != nil && !hb.SentAt.IsZero() && (at.After(hb.SentAt) || hb.SentAt.Sub(*at) > 24*time.Hour) {
		fixes.Clamped = append(fixes.Clamped, fmt.Sprintf("node.gpu_sampled_at %s: after sent_at %s or a day before it", at.Format(time.RFC3339Nano), hb.SentAt.Format(time.RFC3339Nano)))
		hb.Node.GPUSampledAt = nil
	}

	// Workers are held sorted by id; a hive sends them so, but the queen
	// does not count on it.
	if !slices.IsSortedFunc(hb.Workers, func(a, b api.WorkerReport) int { return strings.Compare(a.ID, b.ID) }) {
		slices.SortStableFunc(hb.Workers, func(a, b api.WorkerReport) int { return strings.Compare(a.ID, b.ID) })
	}
	kept := hb.Workers[:0]
	last := ""
	for i := range hb.Workers {
		w := hb.Workers[i]
		err := validWorker(&w, hb.Node.CPUCores, now, &fixes)
		if err == nil && len(kept) > 0 && w.ID == last {
			err = errors.New("duplicate id")
		}
		if err != nil {
			id := w.ID
			if ids.ValidText(id, 2*ids.MaxNameLen+1) != nil {
				id = ids.Quote(id)
			}
			fixes.Dropped = append(fixes.Dropped, api.DroppedWorker{ID: id, Reason: err.Error()})
			continue
		}
		last = w.ID
		kept = append(kept, w)
	}
	clear(hb.Workers[len(kept):])
	hb.Workers = kept
	return fixes, nil
}

// validHeader checks what identifies the hive and its session, and its
// interval (0: the default).
func validHeader(hb *api.Heartbeat) error {
	if err := ids.ValidHiveID(hb.HiveID); err != nil {
		return invalid("hive_id %s: %v", ids.Quote(hb.HiveID), err)
	}
	if hb.SessionID == "" || ids.ValidText(hb.SessionID, 128) != nil {
		return invalid("session_id: want 1 to 128 printable characters")
	}
	if hb.HiveURL != "" {
		u, err := url.Parse(hb.HiveURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || ids.ValidText(hb.HiveURL, 1024) != nil {
			return invalid("hive_url %s: want an http(s) URL", ids.Quote(hb.HiveURL))
		}
	}
	if hb.IntervalMS == 0 {
		hb.IntervalMS = defaultIntMS
	}
	if hb.IntervalMS < minInterval || hb.IntervalMS > maxInterval {
		return invalid("interval_ms %d: want %d to %d", hb.IntervalMS, minInterval, int64(maxInterval))
	}
	for _, s := range []struct{ name, v string }{{"version", hb.Version}, {"gpu_backend", hb.GPUBackend}} {
		if err := ids.ValidText(s.v, 128); err != nil {
			return invalid("%s: %v", s.name, err)
		}
	}
	return nil
}

// validNode nulls impossible host-level numbers.
func validNode(n *api.Node, fixes *Fixes) {
	clampF := func(name string, p **float64, lo, hi float64) {
		if *p != nil && !within(**p, lo, hi) {
			fixes.Clamped = append(fixes.Clamped, fmt.Sprintf("%s %g outside [%g, %g]", name, **p, lo, hi))
			*p = nil
		}
	}
	clampF("node.cpu_pct", &n.CPUPct, 0, 100)
	if n.MemTotalBytes != nil && *n.MemTotalBytes > MaxMemBytes ||
		n.MemUsedBytes != nil && (n.MemTotalBytes == nil || *n.MemUsedBytes > *n.MemTotalBytes) {
		fixes.Clamped = append(fixes.Clamped, "node memory: used above total, or total beyond 1 PiB")
		n.MemTotalBytes, n.MemUsedBytes = nil, nil
	}
	seen := map[int]bool{}
	kept := n.GPUs[:0]
	for _, g := range n.GPUs {
		name := fmt.Sprintf("node.gpus[%d]", g.Index)
		if g.Index < 0 || g.Index >= 1024 || seen[g.Index] || ids.ValidText(g.UUID, 128) != nil || ids.ValidText(g.Name, 256) != nil {
			fixes.Clamped = append(fixes.Clamped, name+": bad or duplicate index, uuid or name; GPU left out")
			continue
		}
		seen[g.Index] = true
		if g.VRAMTotalBytes != nil && *g.VRAMTotalBytes > MaxGPUBytes ||
			g.VRAMUsedBytes != nil && (g.VRAMTotalBytes == nil || *g.VRAMUsedBytes > *g.VRAMTotalBytes) {
			fixes.Clamped = append(fixes.Clamped, name+": VRAM used above total, or total beyond 4 TiB")
			g.VRAMTotalBytes, g.VRAMUsedBytes = nil, nil
		}
		clampF(name+".util_pct", &g.UtilPct, 0, 100)
		clampF(name+".temp_c", &g.TempC, -100, 200)
		clampF(name+".power_w", &g.PowerW, 0, 10000)
		kept = append(kept, g)
	}
	n.GPUs = kept
}

// validWorker checks one worker entry; an error drops it. Timestamps in
// the future (a hive's clock gone wrong) are nulled rather than fatal.
func validWorker(w *api.WorkerReport, cores int, now time.Time, fixes *Fixes) error {
	if err := validID(w.ID); err != nil {
		return err
	}
	switch w.State {
	case api.StateStarting, api.StateReady, api.StateUnhealthy, api.StateExited:
	default:
		return fmt.Errorf("state %s: want starting, ready, unhealthy or exited", ids.Quote(string(w.State)))
	}
	if w.PID < 0 || w.PID > MaxPID {
		return fmt.Errorf("pid %d out of range", w.PID)
	}
	if len(w.PIDs) > MaxPIDsPerWorker {
		return fmt.Errorf("%d pids, at most %d", len(w.PIDs), MaxPIDsPerWorker)
	}
	for _, p := range w.PIDs {
		if p < 1 || p > MaxPID {
			return fmt.Errorf("pid %d out of range", p)
		}
	}
	if len(w.GPUs) > MaxGPUs || len(w.Errors) > maxErrors {
		return fmt.Errorf("more than %d gpus or %d errors", MaxGPUs, maxErrors)
	}
	cleanErrors(w.Errors)
	w.GPUError = ids.Clean(w.GPUError, maxErrorLen)
	if h := w.Health; h != nil {
		h.Target, h.LastError = ids.Clean(h.Target, 2048), ids.Clean(h.LastError, maxErrorLen)
		h.Failures = max(0, h.Failures)
	}

	for i, v := range w.Stats {
		if bound := api.StatTable[i].Bound(cores, len(w.GPUs)); !math.IsNaN(v) && !within(v, 0, bound) {
			return fmt.Errorf("%s %g outside [0, %g]", api.StatFields[i], v, bound)
		}
	}
	seen := map[int]bool{}
	for _, g := range w.GPUs {
		if g.Index < 0 || g.Index >= 1024 || seen[g.Index] {
			return fmt.Errorf("gpus: bad or duplicate index %d", g.Index)
		}
		seen[g.Index] = true
		if !math.IsNaN(g.VRAMBytes) && !within(g.VRAMBytes, 0, MaxGPUBytes) {
			return fmt.Errorf("gpus[%d] vram %g outside [0, 4 TiB]", g.Index, g.VRAMBytes)
		}
		if !math.IsNaN(g.SMUtilPct) && !within(g.SMUtilPct, 0, 100) {
			return fmt.Errorf("gpus[%d] sm_util_pct %g outside [0, 100]", g.Index, g.SMUtilPct)
		}
	}
	limit := now.Add(FutureSlack)
	if x := w.Exit; x != nil {
		if x.Signal != nil {
			if err := ids.ValidText(*x.Signal, 32); err != nil {
				return fmt.Errorf("signal: %v", err)
			}
		}
		x.LogTail = ids.CleanLines(x.LogTail, MaxLogTail)
		if x.ExitedAt != nil && x.ExitedAt.After(limit) {
			fixes.Clamped = append(fixes.Clamped, fmt.Sprintf("%s: exited_at %s is in the future", w.ID, x.ExitedAt.Format(time.RFC3339)))
			x.ExitedAt = nil
		}
	}
	if st := w.Static; st != nil {
		if err := validStatic(w.ID, st); err != nil {
			return err
		}
		if st.StartedAt != nil && st.StartedAt.After(limit) {
			fixes.Clamped = append(fixes.Clamped, fmt.Sprintf("%s: started_at %s is in the future", w.ID, st.StartedAt.Format(time.RFC3339)))
			st.StartedAt = nil
			w.Stats[api.StatUptimeS] = math.NaN()
		}
	}
	return nil
}

// validID checks a worker id: two names joined by "-".
func validID(id string) error {
	if len(id) < 3 || len(id) > 2*ids.MaxNameLen+1 {
		return fmt.Errorf("id %s: want group-instance", ids.Quote(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("id %s: character %q not allowed", ids.Quote(id), r)
		}
	}
	return nil
}

// validStatic checks a worker's static fields.
func validStatic(id string, st *api.WorkerStatic) error {
	if err := ids.ValidName(st.Group); err != nil {
		return fmt.Errorf("group: %v", err)
	}
	if err := ids.ValidName(st.Instance); err != nil {
		return fmt.Errorf("instance: %v", err)
	}
	if id != ids.WorkerID(st.Group, st.Instance) {
		return errors.New("id must be group-instance")
	}
	if len(st.Args) > maxArgs {
		return fmt.Errorf("more than %d args", maxArgs)
	}
	for _, s := range append([]string{st.Binary, st.Cgroup}, st.Args...) {
		if len(s) > maxStrLen || !utf8.ValidString(s) {
			return fmt.Errorf("an argument, the binary or the cgroup is longer than %d bytes or not UTF-8", maxStrLen)
		}
	}
	if st.Model != nil {
		if err := ids.ValidText(*st.Model, api.MaxModelLen); err != nil {
			return fmt.Errorf("model: %v", err)
		}
	}
	if st.CPULimitPct != nil && !within(*st.CPULimitPct, 0.001, 100*MaxCores) {
		return fmt.Errorf("cpu_limit_pct %g out of range", *st.CPULimitPct)
	}
	if st.MemLimitBytes != nil && (*st.MemLimitBytes < 1 || *st.MemLimitBytes > MaxMemBytes) {
		return fmt.Errorf("mem_limit_bytes %d out of range", *st.MemLimitBytes)
	}
	if st.PidsLimit != nil && *st.PidsLimit < 1 {
		return fmt.Errorf("pids_limit %d out of range", *st.PidsLimit)
	}
	return nil
}

// within reports lo <= v <= hi for a finite v.
func within(v, lo, hi float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= lo && v <= hi
}

// cleanErrors makes error strings from a hive safe to show and bounded.
func cleanErrors(errs []string) {
	for i, e := range errs {
		errs[i] = ids.Clean(e, maxErrorLen)
	}
}
