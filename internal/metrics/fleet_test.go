package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rbee-dev/rbee/internal/api"
)

func fleetOf(hs ...api.Hive) Fleet { return Fleet{Hives: func() []api.Hive { return hs }} }

func TestFleetSeries(t *testing.T) {
	started := time.Unix(1795978140, 500e6)
	model := "qwen2.5-0.5b"
	hive := api.Hive{ID: "h1", State: api.HiveStateOnline, LastSeen: time.Unix(1795978150, 0), Version: "v", GPUBackend: "nvml",
		Node: api.Node{CPUCores: 8, CPUPct: api.Ptr(25.0), MemTotalBytes: api.Ptr(uint64(1 << 34)), MemUsedBytes: api.Ptr(uint64(1 << 33)),
			GPUs: []api.GPU{{Index: 0, UUID: "GPU-a", Name: "NVIDIA H200", VRAMTotalBytes: api.Ptr(uint64(1 << 37)), UtilPct: api.Ptr(50.0)}}},
		Workers: []api.Worker{
			{
				ID:           "llm-1",
				State:        api.StateReady,
				PIDs:         []int{10, 11},
				CPUSeconds:   api.Ptr(12.5),
				MemBytes:     api.Ptr(uint64(100 << 20)),
				IOReadBytes:  api.Ptr(uint64(4096)),
				GPUs:         []api.WorkerGPU{{Index: 0, VRAMBytes: api.Ptr(uint64(1 << 30)), SMUtilPct: api.Ptr(40.0)}},
				WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "1", Model: &model, StartedAt: &started, CPULimitPct: api.Ptr(150.0), MemLimitBytes: api.Ptr(int64(512 << 20))},
			},
			// Exited: no series. Unmeasured fields: no series either.
			{ID: "llm-2", State: api.StateExited, WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "2"}},
			{ID: "llm-3", State: api.StateStarting, WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "3"}},
		}}
	f := fleetOf(hive)
	if problems, err := testutil.CollectAndLint(f); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	want := `
# HELP rbee_worker_cpu_limit_cores The worker's CPU limit in cores (1.5 = 150 % of one core); absent when unlimited.
# TYPE rbee_worker_cpu_limit_cores gauge
rbee_worker_cpu_limit_cores{hive="h1",worker="llm-1"} 1.5
# HELP rbee_worker_cpu_seconds_total CPU time the worker's processes have used, in seconds.
# TYPE rbee_worker_cpu_seconds_total counter
rbee_worker_cpu_seconds_total{hive="h1",worker="llm-1"} 12.5
# HELP rbee_worker_gpu_memory_used_bytes GPU memory the worker's processes hold on one GPU.
# TYPE rbee_worker_gpu_memory_used_bytes gauge
rbee_worker_gpu_memory_used_bytes{gpu="0",hive="h1",uuid="GPU-a",worker="llm-1"} 1.073741824e+09
# HELP rbee_worker_gpu_utilization_ratio Share of one GPU's streaming multiprocessors the worker's processes used (0–1).
# TYPE rbee_worker_gpu_utilization_ratio gauge
rbee_worker_gpu_utilization_ratio{gpu="0",hive="h1",uuid="GPU-a",worker="llm-1"} 0.4
# HELP rbee_worker_info A worker the daemon knows (1), with its model and identity; join on worker for the model.
# TYPE rbee_worker_info gauge
rbee_worker_info{group="llm",hive="h1",model="qwen2.5-0.5b",worker="llm-1",worker_instance="1"} 1
rbee_worker_info{group="llm",hive="h1",model="",worker="llm-3",worker_instance="3"} 1
# HELP rbee_worker_start_time_seconds When the worker's main process started, in seconds since the Unix epoch.
# TYPE rbee_worker_start_time_seconds gauge
rbee_worker_start_time_seconds{hive="h1",worker="llm-1"} 1.7959781405e+09
# HELP rbee_hive_up 1 while the queen hears the hive's heartbeats, 0 while it is stale (queen only).
# TYPE rbee_hive_up gauge
rbee_hive_up{hive="h1"} 1
# HELP rbee_hive_cpu_utilization_ratio Busy share of the host's CPUs over the last pass (0–1).
# TYPE rbee_hive_cpu_utilization_ratio gauge
rbee_hive_cpu_utilization_ratio{hive="h1"} 0.25
# HELP rbee_hive_workers Workers on the hive, by state.
# TYPE rbee_hive_workers gauge
rbee_hive_workers{hive="h1",state="exited"} 1
rbee_hive_workers{hive="h1",state="ready"} 1
rbee_hive_workers{hive="h1",state="starting"} 1
rbee_hive_workers{hive="h1",state="unhealthy"} 0
# HELP rbee_gpu_utilization_ratio A GPU's utilisation as the driver reports it (0–1).
# TYPE rbee_gpu_utilization_ratio gauge
rbee_gpu_utilization_ratio{gpu="0",hive="h1",uuid="GPU-a"} 0.5
`
	names := []string{"rbee_worker_cpu_limit_cores", "rbee_worker_cpu_seconds_total", "rbee_worker_gpu_memory_used_bytes",
		"rbee_worker_gpu_utilization_ratio", "rbee_worker_info", "rbee_worker_start_time_seconds", "rbee_hive_up",
		"rbee_hive_cpu_utilization_ratio", "rbee_hive_workers", "rbee_gpu_utilization_ratio"}
	if err := testutil.CollectAndCompare(f, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Nothing measured, nothing sent: no memory series for llm-3, no GPU
	// memory used for a GPU the driver did not report it for.
	for name, n := range map[string]int{"rbee_worker_memory_usage_bytes": 1, "rbee_gpu_memory_used_bytes": 0, "rbee_worker_state": 6,
		"rbee_worker_io_write_bytes_total": 0, "rbee_worker_processes": 1, "rbee_worker_restarts_total": 2} {
		if got := testutil.CollectAndCount(f, name); got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
	}
}

// A stale hive's numbers are left out: its last readings are not now.
func TestFleetStaleHiveHasNoNumbers(t *testing.T) {
	f := fleetOf(api.Hive{ID: "h1", State: api.HiveStateStale, LastSeen: time.Unix(1, 0), Node: api.Node{CPUCores: 2, CPUPct: api.Ptr(50.0)},
		Workers: []api.Worker{{ID: "w", State: api.StateReady, MemBytes: api.Ptr(uint64(1))}}})
	for name, n := range map[string]int{"rbee_hive_up": 1, "rbee_worker_info": 1, "rbee_hive_workers": 4,
		"rbee_hive_cpu_utilization_ratio": 0, "rbee_worker_memory_usage_bytes": 0, "rbee_worker_state": 0} {
		if got := testutil.CollectAndCount(f, name); got != n {
			t.Errorf("stale hive: %s has %d series, want %d", name, got, n)
		}
	}
}

// A hive's own view has no queen-only series (up, last heartbeat).
func TestFleetHiveViewHasNoQueenSeries(t *testing.T) {
	f := fleetOf(api.Hive{ID: "h1", Node: api.Node{CPUCores: 2}})
	if n := testutil.CollectAndCount(f, "rbee_hive_up", "rbee_hive_last_heartbeat_timestamp_seconds"); n != 0 {
		t.Fatalf("%d queen-only series from a hive's view", n)
	}
}

func TestRegistryAndCounts(t *testing.T) {
	r := NewRegistry("queen", "1.2.3")
	c := NewCounts("rbee_test_refused_total", "Refused, by reason.", "reason", func() map[string]uint64 { return map[string]uint64{"b": 2, "a": 1} })
	r.MustRegister(c)
	want := `
# HELP rbee_test_refused_total Refused, by reason.
# TYPE rbee_test_refused_total counter
rbee_test_refused_total{reason="a"} 1
rbee_test_refused_total{reason="b"} 2
`
	if err := testutil.GatherAndCompare(r, strings.NewReader(want), "rbee_test_refused_total"); err != nil {
		t.Fatal(err)
	}
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var build, goroutines bool
	for _, mf := range mfs {
		switch mf.GetName() {
		case "rbee_build_info":
			build = strings.Contains(mf.String(), `value:"1.2.3"`)
		case "go_goroutines":
			goroutines = true
		}
	}
	if !build || !goroutines {
		t.Fatalf("registry lacks build info (%v) or Go runtime metrics (%v)", build, goroutines)
	}
	var _ prometheus.Collector = Fleet{}
}
