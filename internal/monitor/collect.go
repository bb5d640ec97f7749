package monitor

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/counter"
	"github.com/rbee-dev/rbee/internal/procfs"
	"github.com/rbee-dev/rbee/internal/reread"
)

// Collect runs one collection pass over every worker and returns their
// records, sorted by id. A worker that cannot be read gets an entry in its
// Errors; the pass goes on for the others. CPU and I/O rates are deltas
// over the time since the previous pass and null on the first one.
func (m *Monitor) Collect(ctx context.Context) []api.Worker {
	m.collectMu.Lock()
	defer m.collectMu.Unlock()

	m.mu.Lock()
	ws := make([]*worker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	slices.SortFunc(ws, func(a, b *worker) int { return strings.Compare(a.id, b.id) })

	var gpus GPUUsage
	var gpuErr error
	if m.cfg.GPU != nil {
		gpus, gpuErr = m.cfg.GPU.GPUUsage(ctx)
	}

	out := make([]api.Worker, 0, len(ws))
	for _, w := range ws {
		now := m.now()
		m.mu.Lock()
		rec := w.baseLocked(now)
		m.mu.Unlock()
		if rec.State != api.StateExited {
			m.sample(w, &rec, now)
			if m.cfg.GPU != nil {
				attachGPU(&rec, gpus, gpuErr)
			}
		} else {
			w.closeTaskIO()
		}
		m.mu.Lock()
		if rec.State == api.StateStarting && len(rec.PIDs) > 0 && w.state == api.StateStarting {
			w.state = api.StateReady
		}
		if w.state != api.StateExited {
			rec.State = w.stateLocked()
			if w.health != nil {
				rec.Health = w.health.record()
			}
		}
		if w.state != api.StateExited {
			w.last, w.seen = rec, true
		} else {
			// It exited during the pass: report the exit, not a half-read.
			rec = w.baseLocked(now)
		}
		m.mu.Unlock()
		out = append(out, rec)
	}
	return out
}

// sample fills the measured fields of rec.
func (m *Monitor) sample(w *worker, rec *api.Worker, now time.Time) {
	if w.cg != nil {
		m.sampleCgroup(w, rec, now)
		return
	}
	m.samplePlain(w, rec, now)
}

func (m *Monitor) sampleCgroup(w *worker, rec *api.Worker, now time.Time) {
	s, err := w.cg.Sample()
	if err != nil {
		w.prev = sampleMark{}
		if !w.exited() {
			rec.Errors = append(rec.Errors, "cgroup: "+err.Error())
		}
		return
	}
	rec.PIDs = slices.Clone(s.PIDs[:min(len(s.PIDs), api.MaxWorkerPIDs)])
	reportLimits(rec, w.limits, s.Limits)
	rec.MemBytes = api.Ptr(s.MemUsage)
	rec.MemRSSBytes = api.Ptr(s.MemAnon)
	rec.MemWorkingSetBytes = api.Ptr(s.MemUsage - min(s.MemInactiveFile, s.MemUsage))

	mark := sampleMark{ok: true, at: now, cpuNS: s.CPUUsageNS}
	rec.CPUSeconds = api.Ptr(float64(s.CPUUsageNS) / 1e9)
	dt := now.Sub(w.prev.at).Seconds()
	valid := w.prev.ok && dt > 0
	if valid {
		rec.CPUPct = cpuPct(w.prev.cpuNS, s.CPUUsageNS, dt)
	}
	if s.HasIO {
		mark.io, mark.hasIO = s.IO, true
		rec.IOReadBytes, rec.IOWriteBytes = api.Ptr(s.IO.ReadBytes), api.Ptr(s.IO.WriteBytes)
		if valid && w.prev.hasIO {
			rec.IOReadBps, rec.IOWriteBps = ioRates(w.prev.io, s.IO, dt)
		}
	} else if m.cfg.Platform.Proc != nil {
		mark.taskIOs = true
		m.taskIORates(w, rec, s.PIDs, valid && w.prev.taskIOs, dt)
	}
	w.prev = mark
}

// cpuPct is the percent of one core used between two readings of a
// cumulative CPU time in nanoseconds taken dt seconds apart; nil when
// unknown (see counter.Rate).
func cpuPct(prevNS, curNS uint64, dt float64) *float64 {
	r, ok := counter.Rate(prevNS, curNS, dt)
	if !ok {
		return nil
	}
	return api.Ptr(r / 1e9 * 100)
}

// ioRates are the read and write bytes per second between two readings;
// nil when either is unknown.
func ioRates(prev, cur cgroups.IOCounters, dt float64) (read, write *float64) {
	r, rok := counter.Rate(prev.ReadBytes, cur.ReadBytes, dt)
	w, wok := counter.Rate(prev.WriteBytes, cur.WriteBytes, dt)
	if !rok || !wok {
		return nil, nil
	}
	return &r, &w
}

// reportLimits puts the limits in force into rec, and an error when they
// differ from the ones the hive set: someone changed them behind its back.
func reportLimits(rec *api.Worker, set, now cgroups.Limits) {
	rec.CPULimitPct, rec.MemLimitBytes, rec.PidsLimit = nil, nil, nil
	if now.CPU > 0 {
		rec.CPULimitPct = api.Ptr(now.CPU.Percent())
	}
	if now.MemoryBytes > 0 {
		rec.MemLimitBytes = api.Ptr(now.MemoryBytes)
	}
	if now.Pids > 0 {
		rec.PidsLimit = api.Ptr(now.Pids)
	}
	var drift []string
	if math.Abs(float64(now.CPU-set.CPU)) > 0.01 {
		drift = append(drift, fmt.Sprintf("cpu %s, set %s", limitStr(now.CPU > 0, now.CPU.Percent(), "%"), limitStr(set.CPU > 0, set.CPU.Percent(), "%")))
	}
	if now.MemoryBytes != set.MemoryBytes {
		drift = append(drift, fmt.Sprintf("memory %s, set %s", limitStr(now.MemoryBytes > 0, float64(now.MemoryBytes), " bytes"), limitStr(set.MemoryBytes > 0, float64(set.MemoryBytes), " bytes")))
	}
	if now.Pids != set.Pids {
		drift = append(drift, fmt.Sprintf("pids %s, set %s", limitStr(now.Pids > 0, float64(now.Pids), ""), limitStr(set.Pids > 0, float64(set.Pids), "")))
	}
	if len(drift) > 0 {
		rec.Errors = append(rec.Errors, "limits changed outside rbee: "+strings.Join(drift, "; "))
	}
}

func limitStr(set bool, v float64, unit string) string {
	if !set {
		return "none"
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + unit
}

// taskIORates computes I/O rates and totals from per-task counters
// (cgroup v1, where blkio counts nothing without a throttle rule). For
// the rate a task's bytes count from its second sample on; a task that
// exited takes its last interval with it. The total counts every task's
// bytes since it started (each task of the cgroup is the worker's), and
// keeps those of exited tasks as last read.
func (m *Monitor) taskIORates(w *worker, rec *api.Worker, pids []int, valid bool, dt float64) {
	if w.taskIO == nil {
		w.taskIO = map[int]*taskIO{}
	}
	var rd, wr uint64
	var errs int
	total := w.ioDone
	for _, pid := range pids {
		t := w.taskIO[pid]
		if t == nil {
			t = &taskIO{file: reread.File{Path: m.cfg.Platform.Proc.Path(pid, "io")}}
			w.taskIO[pid] = t
		}
		b, err := t.file.Read(&w.readBuf)
		var cur procfs.IO
		if err == nil {
			cur, err = procfs.ParseIO(b)
		}
		if err != nil {
			errs++
			t.ok = false
			continue
		}
		if t.ok && cur.ReadBytes >= t.prev.ReadBytes && cur.WriteBytes >= t.prev.WriteBytes {
			rd += cur.ReadBytes - t.prev.ReadBytes
			wr += cur.WriteBytes - t.prev.WriteBytes
		}
		t.prev, t.ok = cur, true
		total.ReadBytes += cur.ReadBytes
		total.WriteBytes += cur.WriteBytes
	}
	for pid, t := range w.taskIO {
		if !slices.Contains(pids, pid) {
			if t.ok {
				w.ioDone.ReadBytes += t.prev.ReadBytes
				w.ioDone.WriteBytes += t.prev.WriteBytes
			}
			_ = t.file.Close()
			delete(w.taskIO, pid)
		}
	}
	if errs == 0 {
		rec.IOReadBytes, rec.IOWriteBytes = api.Ptr(total.ReadBytes), api.Ptr(total.WriteBytes)
	}
	if valid && errs == 0 {
		rec.IOReadBps, rec.IOWriteBps = ioRates(cgroups.IOCounters{}, cgroups.IOCounters{ReadBytes: rd, WriteBytes: wr}, dt)
	} else if errs > 0 && len(pids) > 0 && !w.exited() {
		rec.Errors = append(rec.Errors, fmt.Sprintf("io: %d of %d tasks unreadable", errs, len(pids)))
	}
}

// samplePlain measures a worker without a cgroup from its process tree:
// the main process and every descendant, re-read each pass, so the load,
// memory and GPU of a child (vLLM keeps its CUDA context in one) count.
// Off Linux there is no procfs and only identity and uptime remain.
func (m *Monitor) samplePlain(w *worker, rec *api.Worker, now time.Time) {
	rec.PIDs = []int{w.pid}
	p := m.cfg.Platform.Proc
	if p == nil {
		return
	}
	pids, err := p.Tree(w.pid, api.MaxWorkerPIDs)
	if err != nil {
		w.prev = sampleMark{}
		if !w.exited() {
			rec.Errors = append(rec.Errors, "proc: "+err.Error())
		}
		return
	}
	// CPU: each process's own time and that of the children it reaped,
	// so a child's time stays counted when it ends and its parent waits
	// for it. Memory: the sum of resident sets (pages shared between the
	// processes count once each; a cgroup counts them once).
	var ticks uint64
	var rssPages int64
	live := pids[:0]
	for _, pid := range pids {
		st, err := p.Stat(pid)
		if err != nil {
			if pid == w.pid {
				w.prev = sampleMark{}
				if !w.exited() {
					rec.Errors = append(rec.Errors, "proc: "+err.Error())
				}
				return
			}
			continue // ended while the pass read the tree
		}
		live = append(live, pid)
		ticks += st.UTime + st.STime + st.CUTime + st.CSTime
		rssPages += max(st.RSSPages, 0)
	}
	rec.PIDs = live
	rss := uint64(rssPages) * pageSize
	rec.MemBytes, rec.MemRSSBytes, rec.MemWorkingSetBytes = &rss, &rss, &rss
	cpuNS := ticks * uint64(time.Second) / m.tick
	rec.CPUSeconds = api.Ptr(float64(cpuNS) / 1e9)
	dt := now.Sub(w.prev.at).Seconds()
	if w.prev.ok {
		// A descendant that ended unreaped by the tree (its parent gone
		// first) takes its time with it: the counter then goes back,
		// and the rate is unknown for that pass, never negative.
		rec.CPUPct = cpuPct(w.prev.cpuNS, cpuNS, dt)
	}
	m.taskIORates(w, rec, rec.PIDs, w.prev.ok && dt > 0, dt)
	w.prev = sampleMark{ok: true, at: now, cpuNS: cpuNS, taskIOs: true}
}

// attachGPU sums the GPU use of every pid of the worker (the CUDA context
// may live in a child process), per GPU. A worker the backend saw on no
// GPU gets empty gpus and zero sums; a failed backend leaves every GPU
// field null with the error attached; a sample that began before the
// worker started cannot speak for it, and leaves them null until the next.
func attachGPU(rec *api.Worker, usage GPUUsage, err error) {
	if err != nil {
		rec.GPUError = err.Error()
		rec.Errors = append(rec.Errors, "gpu: "+err.Error())
		return
	}
	if usage.At.IsZero() || rec.StartedAt != nil && usage.At.Before(*rec.StartedAt) {
		return
	}
	rec.GPUSampledAt = &usage.At
	gpus := usage.ByPID
	byIndex := map[int]*api.WorkerGPU{}
	var order []int
	for _, pid := range rec.PIDs {
		for _, g := range gpus[pid] {
			acc := byIndex[g.Index]
			if acc == nil {
				acc = &api.WorkerGPU{Index: g.Index, UUID: g.UUID}
				byIndex[g.Index] = acc
				order = append(order, g.Index)
			}
			acc.VRAMBytes = addPtr(acc.VRAMBytes, g.VRAMBytes)
			acc.SMUtilPct = addPtr(acc.SMUtilPct, g.SMUtilPct)
		}
	}
	slices.Sort(order)
	rec.GPUs = []api.WorkerGPU{}
	var vram uint64
	var util float64
	var haveUtil bool
	for _, i := range order {
		g := *byIndex[i]
		rec.GPUs = append(rec.GPUs, g)
		if g.VRAMBytes != nil {
			vram += *g.VRAMBytes
		}
		if g.SMUtilPct != nil {
			util += *g.SMUtilPct
			haveUtil = true
		}
	}
	rec.VRAMBytes = &vram
	// The drivers only report SM use for processes that used the SMs in
	// the sampling window; a worker holding VRAM without any such sample
	// was idle on the GPU, so its sum is 0 unless the SM source failed.
	if len(usage.Partial) > 0 && len(order) > 0 {
		for _, p := range usage.Partial {
			rec.Errors = append(rec.Errors, "gpu: "+p)
		}
		if haveUtil {
			rec.GPUUtilPct = &util
		}
		return
	}
	rec.GPUUtilPct = &util
}

func addPtr[T uint64 | float64](acc, v *T) *T {
	if v == nil {
		return acc
	}
	if acc == nil {
		x := *v
		return &x
	}
	x := *acc + *v
	return &x
}

// pageSize is the unit of the rss field of /proc/<pid>/stat.
var pageSize = uint64(osPageSize())
