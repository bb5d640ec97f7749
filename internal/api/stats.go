package api

import "math"

// A worker's measured numbers, described once. StatTable says, for each,
// its JSON name, how it is rounded, how large a heartbeat may say it is,
// and the Prometheus series it is exported as; the heartbeat's Stats
// array, the record (Worker.Stat, Worker.SetStat), the queen's validation
// and the metrics loop over it.
//
// Adding a stat: a Stat constant before NumStats (new stats go last: a
// hive_telemetry row and an older queen read the array by position), its
// StatTable line, its field on Worker, and its line in Worker.Stats and
// Worker.SetStats.

// Stat indexes Stats and StatTable.
type Stat int

// The measured numbers of a worker, in their JSON order.
const (
	StatCPUPct             Stat = iota // percent of one core, 0.1 % steps
	StatMemBytes                       // cgroup memory usage
	StatMemRSSBytes                    // anonymous memory
	StatMemWorkingSetBytes             // usage minus inactive file cache
	StatIOReadBps                      // bytes read per second
	StatIOWriteBps                     // bytes written per second
	StatUptimeS                        // seconds since the main process started
	StatVRAMBytes                      // GPU memory over every pid and GPU
	StatGPUUtilPct                     // SM use summed over the worker's GPUs
	// Cumulative counters, for Prometheus: they only grow while the
	// worker's cgroup lives, and a rate over any window is exact where the
	// per-pass rates above are samples.
	StatCPUSeconds   // CPU time used, seconds, to the millisecond
	StatIOReadBytes  // bytes read
	StatIOWriteBytes // bytes written
	NumStats
)

// Bounds on what a heartbeat may say, shared by the stat table and the
// queen's validation: beyond them a number is not a measurement.
const (
	// MaxGPUs bounds a host's GPUs.
	MaxGPUs = 64
	// MaxGPUBytes bounds one GPU's memory: 4 TiB is beyond any GPU made.
	MaxGPUBytes = 4 << 40
	// MaxMemBytes bounds host and worker memory figures (1 PiB).
	MaxMemBytes = 1 << 50
	// MaxIORate bounds an I/O rate in bytes per second (1 TB/s).
	MaxIORate = 1e12
	// century is a hundred years in seconds: no worker has run longer.
	century = 100 * 365 * 86400
)

// Scale says what a stat's bound is per.
type Scale int

// Scales of a stat's bound.
const (
	PerWorker Scale = iota // Max as it is
	PerCore                // Max times the hive's CPU cores
	PerGPU                 // Max times the worker's GPUs (at least one)
)

// StatInfo describes one stat.
type StatInfo struct {
	// Name is the stat's JSON name, in the record and in StatFields.
	Name string
	// Decimals is what the stat is rounded to on the wire and in the
	// queen's record: 0 whole, 1 tenths, 3 thousandths.
	Decimals int
	// Bytes says the record holds it as a count (*uint64), not *float64.
	Bytes bool
	// Max and Scale bound it: a heartbeat saying more than Max (times
	// the scale) or less than 0 has its worker entry refused.
	Max   float64
	Scale Scale
	// Metric is the Prometheus series it is exported as, "" for none
	// (a per-pass rate is left to Prometheus's rate() over the counter);
	// Counter says the series only grows.
	Metric, Help string
	Counter      bool
}

// StatTable describes every stat, in Stat order.
var StatTable = [NumStats]StatInfo{
	// A rate over a jittery window may read a little above 100 % a core.
	StatCPUPct: {Name: "cpu_pct", Decimals: 1, Max: 110, Scale: PerCore},
	StatMemBytes: {Name: "mem_bytes", Bytes: true, Max: MaxMemBytes, Metric: "rbee_worker_memory_usage_bytes",
		Help: "Memory charged to the worker's cgroup, page cache included."},
	StatMemRSSBytes: {Name: "mem_rss_bytes", Bytes: true, Max: MaxMemBytes, Metric: "rbee_worker_memory_rss_bytes",
		Help: "Anonymous memory of the worker's processes."},
	StatMemWorkingSetBytes: {Name: "mem_working_set_bytes", Bytes: true, Max: MaxMemBytes, Metric: "rbee_worker_memory_working_set_bytes",
		Help: "Memory usage minus inactive file cache: what the OOM killer weighs."},
	StatIOReadBps:  {Name: "io_read_bps", Max: MaxIORate},
	StatIOWriteBps: {Name: "io_write_bps", Max: MaxIORate},
	StatUptimeS:    {Name: "uptime_s", Max: century},
	StatVRAMBytes:  {Name: "vram_bytes", Bytes: true, Max: MaxGPUs * MaxGPUBytes},
	StatGPUUtilPct: {Name: "gpu_util_pct", Decimals: 1, Max: 100, Scale: PerGPU},
	// A century on every core; 1 EiB.
	StatCPUSeconds: {Name: "cpu_seconds", Decimals: 3, Max: century, Scale: PerCore, Metric: "rbee_worker_cpu_seconds_total",
		Help: "CPU time the worker's processes have used, in seconds.", Counter: true},
	StatIOReadBytes: {Name: "io_read_bytes", Bytes: true, Max: 1 << 60, Metric: "rbee_worker_io_read_bytes_total",
		Help: "Bytes the worker's processes have read from storage.", Counter: true},
	StatIOWriteBytes: {Name: "io_write_bytes", Bytes: true, Max: 1 << 60, Metric: "rbee_worker_io_write_bytes_total",
		Help: "Bytes the worker's processes have written to storage.", Counter: true},
}

// StatFields names Stats' elements, in order, as the JSON record names
// them; a hive_telemetry event repeats it once.
var StatFields = func() (names [NumStats]string) {
	for i, s := range StatTable {
		names[i] = s.Name
	}
	return names
}()

// Stats are a worker's measured numbers; NaN means unknown (JSON null),
// never a made-up zero.
type Stats [NumStats]float64

// UnknownStats returns Stats with every number unknown.
func UnknownStats() Stats {
	var s Stats
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// Known reports whether stat i is measured.
func (s *Stats) Known(i Stat) bool { return !math.IsNaN(s[i]) }

// Ptr returns stat i as a pointer, nil when unknown.
func (s *Stats) Ptr(i Stat) *float64 {
	if math.IsNaN(s[i]) {
		return nil
	}
	v := s[i]
	return &v
}

// Bound is the largest value stat i may have for a worker on a hive with
// cores CPU cores and gpus GPUs.
func (s *StatInfo) Bound(cores, gpus int) float64 {
	switch s.Scale {
	case PerCore:
		return s.Max * float64(cores)
	case PerGPU:
		return s.Max * float64(max(gpus, 1))
	}
	return s.Max
}

// Stats returns the record's measured numbers.
func (w *Worker) Stats() Stats {
	return Stats{
		StatCPUPct:             num(w.CPUPct),
		StatMemBytes:           count(w.MemBytes),
		StatMemRSSBytes:        count(w.MemRSSBytes),
		StatMemWorkingSetBytes: count(w.MemWorkingSetBytes),
		StatIOReadBps:          num(w.IOReadBps),
		StatIOWriteBps:         num(w.IOWriteBps),
		StatUptimeS:            num(w.UptimeS),
		StatVRAMBytes:          count(w.VRAMBytes),
		StatGPUUtilPct:         num(w.GPUUtilPct),
		StatCPUSeconds:         num(w.CPUSeconds),
		StatIOReadBytes:        count(w.IOReadBytes),
		StatIOWriteBytes:       count(w.IOWriteBytes),
	}
}

// SetStats sets the record's measured numbers; NaN (and, for a byte
// count, a negative number) is unknown.
//
// Field by field, as Stats is, rather than through a table of accessors:
// called through func values, accessors made the record escape to the
// heap and doubled the cost of ReportOf and Record (254.9 → 564.7 ns a
// worker, measured). TestStatTableMatchesWorker fails for a stat either
// function leaves out.
func (w *Worker) SetStats(s *Stats) {
	w.CPUPct = s.Ptr(StatCPUPct)
	w.MemBytes = s.Count(StatMemBytes)
	w.MemRSSBytes = s.Count(StatMemRSSBytes)
	w.MemWorkingSetBytes = s.Count(StatMemWorkingSetBytes)
	w.IOReadBps = s.Ptr(StatIOReadBps)
	w.IOWriteBps = s.Ptr(StatIOWriteBps)
	w.UptimeS = s.Ptr(StatUptimeS)
	w.VRAMBytes = s.Count(StatVRAMBytes)
	w.GPUUtilPct = s.Ptr(StatGPUUtilPct)
	w.CPUSeconds = s.Ptr(StatCPUSeconds)
	w.IOReadBytes = s.Count(StatIOReadBytes)
	w.IOWriteBytes = s.Count(StatIOWriteBytes)
}

// Round rounds each stat to its StatTable Decimals, as the wire does.
func (s *Stats) Round() {
	for i, v := range s {
		s[i] = round(v, StatTable[i].Decimals)
	}
}

// Count returns stat i as a byte count pointer, nil when unknown.
func (s *Stats) Count(i Stat) *uint64 {
	if math.IsNaN(s[i]) || s[i] < 0 {
		return nil
	}
	v := uint64(s[i])
	return &v
}

func num(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func count(p *uint64) float64 {
	if p == nil {
		return math.NaN()
	}
	return float64(*p)
}

// round rounds v to decimals places (0 to 3); NaN stays NaN.
func round(v float64, decimals int) float64 {
	if decimals == 0 {
		return math.Round(v)
	}
	return math.Round(v*pow10[decimals]) / pow10[decimals]
}
