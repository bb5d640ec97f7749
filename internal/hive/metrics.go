package hive

import (
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/metrics"
)

// hiveMetrics are the hive's own timings and failures; its workers, host
// and GPUs are read from the latest snapshot at scrape time.
type hiveMetrics struct {
	reg      *prometheus.Registry
	pass     prometheus.Histogram
	gpuQuery prometheus.Histogram

	mu          sync.Mutex
	gpuFailures map[string]uint64
}

var (
	descSent = prometheus.NewDesc("rbee_hive_heartbeats_sent_total",
		"Heartbeats a queen accepted, by queen.", []string{"queen"}, nil)
	descFailed = prometheus.NewDesc("rbee_hive_heartbeat_failures_total",
		"Heartbeats that did not reach a queen or were refused, by queen.", []string{"queen"}, nil)
)

// senderCounts exports each sender's delivered and failed heartbeats.
type senderCounts struct{ s []*sender }

func (c senderCounts) Describe(ch chan<- *prometheus.Desc) { ch <- descSent; ch <- descFailed }

func (c senderCounts) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.s {
		q := s.info()
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(q.Sent), q.URL)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(q.Failed), q.URL)
	}
}

func (s *Server) newMetrics() *hiveMetrics {
	m := &hiveMetrics{
		reg: metrics.NewRegistry("hive", s.cfg.Version),
		pass: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rbee_hive_collection_duration_seconds",
			Help:    "Time of one collection pass over every worker (GPU query included).",
			Buckets: metrics.DurationBuckets,
		}),
		gpuQuery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rbee_hive_gpu_query_duration_seconds",
			Help:    "Time of one GPU query (NVML or nvidia-smi), failed ones included.",
			Buckets: metrics.DurationBuckets,
		}),
		// Every reason from the start: a query for failures finds zeros,
		// not nothing.
		gpuFailures: map[string]uint64{"timeout": 0, "stuck": 0, "bad_output": 0, "error": 0},
	}
	m.reg.MustRegister(
		metrics.Fleet{Hives: func() []api.Hive { return []api.Hive{s.asHive()} }},
		m.pass, m.gpuQuery,
		metrics.NewCounts("rbee_hive_gpu_query_failures_total", "GPU queries that failed, by reason: timeout, stuck, bad_output, error.", "reason", m.gpuFailureCounts),
		metrics.NewCounts("rbee_http_requests_refused_total", "Requests refused before any handler, by reason.", "reason", s.requestRefusals),
	)
	if len(s.sends) > 0 {
		m.reg.MustRegister(senderCounts{s.sends})
	}
	if s.cfg.GPU != nil {
		s.cfg.GPU.Observe(m.gpuObserved)
	}
	return m
}

// gpuObserved counts a GPU query; took is 0 when none ran (an earlier one
// is stuck).
func (m *hiveMetrics) gpuObserved(took time.Duration, err error) {
	if took > 0 {
		m.gpuQuery.Observe(took.Seconds())
	}
	if err != nil {
		m.mu.Lock()
		m.gpuFailures[gpu.FailureReason(err)]++
		m.mu.Unlock()
	}
}

func (m *hiveMetrics) gpuFailureCounts() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.gpuFailures)
}

// asHive is the hive as the queen would list it, from the latest
// snapshot: what the fleet collector reads.
func (s *Server) asHive() api.Hive {
	snap := s.latest()
	backend := "none"
	if s.cfg.GPU != nil {
		backend = s.cfg.GPU.Backend()
	}
	return api.Hive{ID: s.cfg.HiveID, URL: s.url, Version: s.cfg.Version, GPUBackend: backend, Node: snap.node, Workers: snap.workers}
}

// requestRefusals are the requests the guard refused and the connections
// the listener closed (over the cap, evicted unauthenticated, silent), by
// reason.
func (s *Server) requestRefusals() map[string]uint64 {
	out := s.guard.Refused()
	if s.ln != nil {
		maps.Copy(out, s.ln.Refusals())
	}
	return out
}
