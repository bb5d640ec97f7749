// Package metrics exports rbee's truth to Prometheus: the workers, hosts
// and GPUs a daemon knows (read at scrape time from the same records the
// API serves, so a series goes when its worker goes) and each daemon's
// own health.
package metrics

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rbee-dev/rbee/internal/api"
)

// Names follow Prometheus conventions (base units, _total counters,
// ratios 0–1) and stay close to cAdvisor's container_* and dcgm-exporter's
// DCGM_FI_DEV_* so that queries carry over.
var (
	workerLabels = []string{"hive", "worker"}
	gpuLabels    = []string{"hive", "gpu", "uuid"}

	descWorkerInfo = prometheus.NewDesc("rbee_worker_info",
		"A worker the daemon knows (1), with its model and identity; join on worker for the model.",
		// worker_instance, not instance: Prometheus gives every series an
		// instance label of its own (the scrape target).
		[]string{"hive", "worker", "group", "worker_instance", "model"}, nil)
	descWorkerState = prometheus.NewDesc("rbee_worker_state",
		"1 for the worker's current lifecycle state, 0 for the others.",
		[]string{"hive", "worker", "state"}, nil)
	descWorkerCPULimit = prometheus.NewDesc("rbee_worker_cpu_limit_cores",
		"The worker's CPU limit in cores (1.5 = 150 % of one core); absent when unlimited.", workerLabels, nil)
	descWorkerMemLimit = prometheus.NewDesc("rbee_worker_memory_limit_bytes",
		"The worker's memory limit; absent when unlimited.", workerLabels, nil)
	descWorkerStart = prometheus.NewDesc("rbee_worker_start_time_seconds",
		"When the worker's main process started, in seconds since the Unix epoch.", workerLabels, nil)
	descWorkerProcs = prometheus.NewDesc("rbee_worker_processes",
		"Processes in the worker's cgroup.", workerLabels, nil)
	descWorkerRestarts = prometheus.NewDesc("rbee_worker_restarts_total",
		"Times the hive restarted the worker under its restart policy.", workerLabels, nil)
	descWorkerPidsLimit = prometheus.NewDesc("rbee_worker_pids_limit",
		"The worker's pids limit; absent when unlimited.", workerLabels, nil)
	descWorkerVRAM = prometheus.NewDesc("rbee_worker_gpu_memory_used_bytes",
		"GPU memory the worker's processes hold on one GPU.", []string{"hive", "worker", "gpu", "uuid"}, nil)
	descWorkerSM = prometheus.NewDesc("rbee_worker_gpu_utilization_ratio",
		"Share of one GPU's streaming multiprocessors the worker's processes used (0–1).", []string{"hive", "worker", "gpu", "uuid"}, nil)

	descHiveInfo = prometheus.NewDesc("rbee_hive_info",
		"A hive (1), with its version and GPU backend.", []string{"hive", "version", "gpu_backend"}, nil)
	descHiveUp = prometheus.NewDesc("rbee_hive_up",
		"1 while the queen hears the hive's heartbeats, 0 while it is stale (queen only).", []string{"hive"}, nil)
	descHiveLastSeen = prometheus.NewDesc("rbee_hive_last_heartbeat_timestamp_seconds",
		"When the queen applied the hive's last heartbeat, by the queen's clock (queen only).", []string{"hive"}, nil)
	descHiveCores = prometheus.NewDesc("rbee_hive_cpu_cores",
		"CPU cores of the hive's host.", []string{"hive"}, nil)
	descHiveCPU = prometheus.NewDesc("rbee_hive_cpu_utilization_ratio",
		"Busy share of the host's CPUs over the last pass (0–1).", []string{"hive"}, nil)
	descHiveMemTotal = prometheus.NewDesc("rbee_hive_memory_total_bytes",
		"Memory of the hive's host.", []string{"hive"}, nil)
	descHiveMemUsed = prometheus.NewDesc("rbee_hive_memory_used_bytes",
		"Memory in use on the host (total minus available).", []string{"hive"}, nil)
	descHiveWorkers = prometheus.NewDesc("rbee_hive_workers",
		"Workers on the hive, by state.", []string{"hive", "state"}, nil)

	descGPUInfo = prometheus.NewDesc("rbee_gpu_info",
		"A GPU of a hive (1), with its model name.", []string{"hive", "gpu", "uuid", "name"}, nil)
	descGPUMemTotal = prometheus.NewDesc("rbee_gpu_memory_total_bytes",
		"A GPU's memory.", gpuLabels, nil)
	descGPUMemUsed = prometheus.NewDesc("rbee_gpu_memory_used_bytes",
		"A GPU's memory in use, by every process.", gpuLabels, nil)
	descGPUUtil = prometheus.NewDesc("rbee_gpu_utilization_ratio",
		"A GPU's utilisation as the driver reports it (0–1).", gpuLabels, nil)
	descGPUTemp = prometheus.NewDesc("rbee_gpu_temperature_celsius",
		"A GPU's temperature.", gpuLabels, nil)
	descGPUPower = prometheus.NewDesc("rbee_gpu_power_watts",
		"A GPU's power draw.", gpuLabels, nil)
)

// statDescs are the series of the stats the table exports, by Stat.
var statDescs = func() (d [api.NumStats]*prometheus.Desc) {
	for i, s := range api.StatTable {
		if s.Metric != "" {
			d[i] = prometheus.NewDesc(s.Metric, s.Help, workerLabels, nil)
		}
	}
	return d
}()

// workerStates are the states rbee_worker_state has a series for: an
// exited worker's series end (rbee_hive_workers counts the exited).
var workerStates = []api.State{api.StateStarting, api.StateReady, api.StateUnhealthy}

// hiveWorkerStates are the states rbee_hive_workers counts.
var hiveWorkerStates = []api.State{api.StateStarting, api.StateReady, api.StateUnhealthy, api.StateExited}

// Fleet is a collector of hives, their hosts, GPUs and live workers,
// read from Hives at every scrape. Exited workers are left out, so their
// series end when they exit (bounded cardinality). A stale hive's numbers
// are left out too, as its last readings are not measurements of now:
// its info, rbee_hive_up 0 and its workers' info stay, so graphs show a
// gap, not a flat line.
type Fleet struct {
	Hives func() []api.Hive
}

// Describe sends every descriptor Fleet may emit.
func (f Fleet) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range statDescs {
		if d != nil {
			ch <- d
		}
	}
	for _, d := range []*prometheus.Desc{descWorkerInfo, descWorkerState, descWorkerCPULimit,
		descWorkerMemLimit, descWorkerStart, descWorkerProcs,
		descWorkerPidsLimit, descWorkerRestarts, descWorkerVRAM, descWorkerSM, descHiveInfo, descHiveUp, descHiveLastSeen, descHiveCores, descHiveCPU, descHiveMemTotal,
		descHiveMemUsed, descHiveWorkers, descGPUInfo, descGPUMemTotal, descGPUMemUsed, descGPUUtil, descGPUTemp, descGPUPower} {
		ch <- d
	}
}

// Collect sends the current value of every series.
func (f Fleet) Collect(ch chan<- prometheus.Metric) {
	for _, h := range f.Hives() {
		collectHive(ch, &h)
	}
}

func collectHive(ch chan<- prometheus.Metric, h *api.Hive) {
	id := h.ID
	gauge(ch, descHiveInfo, 1, id, h.Version, h.GPUBackend)
	if !h.LastSeen.IsZero() {
		up := 0.0
		if h.State == api.HiveStateOnline {
			up = 1
		}
		gauge(ch, descHiveUp, up, id)
		gauge(ch, descHiveLastSeen, float64(h.LastSeen.UnixMilli())/1000, id)
	}
	count := map[api.State]int{}
	for i := range h.Workers {
		count[h.Workers[i].State]++
	}
	for _, st := range hiveWorkerStates {
		gauge(ch, descHiveWorkers, float64(count[st]), id, string(st))
	}
	if h.State == api.HiveStateStale {
		for i := range h.Workers {
			if w := &h.Workers[i]; w.State != api.StateExited {
				gauge(ch, descWorkerInfo, 1, id, w.ID, w.Group, w.Instance, str(w.Model))
			}
		}
		return
	}
	gauge(ch, descHiveCores, float64(h.Node.CPUCores), id)
	if p := h.Node.CPUPct; p != nil {
		gauge(ch, descHiveCPU, *p/100, id)
	}
	gaugeU(ch, descHiveMemTotal, h.Node.MemTotalBytes, id)
	gaugeU(ch, descHiveMemUsed, h.Node.MemUsedBytes, id)
	uuids := map[int]string{}
	for _, g := range h.Node.GPUs {
		idx := strconv.Itoa(g.Index)
		uuids[g.Index] = g.UUID
		gauge(ch, descGPUInfo, 1, id, idx, g.UUID, g.Name)
		gaugeU(ch, descGPUMemTotal, g.VRAMTotalBytes, id, idx, g.UUID)
		gaugeU(ch, descGPUMemUsed, g.VRAMUsedBytes, id, idx, g.UUID)
		if g.UtilPct != nil {
			gauge(ch, descGPUUtil, *g.UtilPct/100, id, idx, g.UUID)
		}
		gaugeF(ch, descGPUTemp, g.TempC, id, idx, g.UUID)
		gaugeF(ch, descGPUPower, g.PowerW, id, idx, g.UUID)
	}
	for i := range h.Workers {
		if w := &h.Workers[i]; w.State != api.StateExited {
			collectWorker(ch, id, w, uuids)
		}
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func collectWorker(ch chan<- prometheus.Metric, hive string, w *api.Worker, uuids map[int]string) {
	gauge(ch, descWorkerInfo, 1, hive, w.ID, w.Group, w.Instance, str(w.Model))
	for _, st := range workerStates {
		v := 0.0
		if w.State == st {
			v = 1
		}
		gauge(ch, descWorkerState, v, hive, w.ID, string(st))
	}
	stats := w.Stats()
	for i, d := range statDescs {
		if v := stats[i]; d != nil && !math.IsNaN(v) {
			kind := prometheus.GaugeValue
			if api.StatTable[i].Counter {
				kind = prometheus.CounterValue
			}
			ch <- prometheus.MustNewConstMetric(d, kind, v, hive, w.ID)
		}
	}
	if w.CPULimitPct != nil {
		gauge(ch, descWorkerCPULimit, *w.CPULimitPct/100, hive, w.ID)
	}
	if w.MemLimitBytes != nil {
		gauge(ch, descWorkerMemLimit, float64(*w.MemLimitBytes), hive, w.ID)
	}
	if w.StartedAt != nil {
		gauge(ch, descWorkerStart, float64(w.StartedAt.UnixMilli())/1000, hive, w.ID)
	}
	if len(w.PIDs) > 0 {
		gauge(ch, descWorkerProcs, float64(len(w.PIDs)), hive, w.ID)
	}
	if w.PidsLimit != nil {
		gauge(ch, descWorkerPidsLimit, float64(*w.PidsLimit), hive, w.ID)
	}
	ch <- prometheus.MustNewConstMetric(descWorkerRestarts, prometheus.CounterValue, float64(w.Restarts), hive, w.ID)
	for _, g := range w.GPUs {
		idx, uuid := strconv.Itoa(g.Index), g.UUID
		if uuid == "" {
			uuid = uuids[g.Index]
		}
		gaugeU(ch, descWorkerVRAM, g.VRAMBytes, hive, w.ID, idx, uuid)
		if g.SMUtilPct != nil {
			gauge(ch, descWorkerSM, *g.SMUtilPct/100, hive, w.ID, idx, uuid)
		}
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	if math.IsNaN(v) {
		return
	}
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// gaugeU sends a byte count; nothing when unknown (a missing series, never
// a made-up zero).
func gaugeU(ch chan<- prometheus.Metric, d *prometheus.Desc, v *uint64, labels ...string) {
	if v != nil {
		gauge(ch, d, float64(*v), labels...)
	}
}

func gaugeF(ch chan<- prometheus.Metric, d *prometheus.Desc, v *float64, labels ...string) {
	if v != nil {
		gauge(ch, d, *v, labels...)
	}
}
