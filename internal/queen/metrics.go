package queen

import (
	"github.com/prometheus/client_golang/prometheus"
	"maps"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/metrics"
)

// The queen's own health, read from the counters /v1/info shows.
var (
	descHeartbeats = prometheus.NewDesc("rbee_queen_heartbeats_received_total",
		"Heartbeats the queen applied.", nil, nil)
	descIgnored = prometheus.NewDesc("rbee_queen_heartbeats_ignored_total",
		"Heartbeats older than the last applied one of their session.", nil, nil)
	descHives = prometheus.NewDesc("rbee_queen_hives",
		"Hives in the registry, by state.", []string{"state"}, nil)
	descWorkers = prometheus.NewDesc("rbee_queen_workers",
		"Workers in the registry.", nil, nil)
	descClients = prometheus.NewDesc("rbee_queen_stream_clients",
		"Clients connected to the event stream.", nil, nil)
	descEvicted = prometheus.NewDesc("rbee_queen_stream_evicted_total",
		"Stream clients disconnected because they could not keep up.", nil, nil)
	descCoalesced = prometheus.NewDesc("rbee_queen_stream_coalesced_total",
		"hive_telemetry events replaced by a newer one in a slow client's queue.", nil, nil)
)

type health struct{ s *Server }

func (h health) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHeartbeats, descIgnored, descHives, descWorkers, descClients, descEvicted, descCoalesced} {
		ch <- d
	}
}

func (h health) Collect(ch chan<- prometheus.Metric) {
	sum := h.s.summary()
	ch <- prometheus.MustNewConstMetric(descHeartbeats, prometheus.CounterValue, float64(sum.Heartbeats))
	ch <- prometheus.MustNewConstMetric(descIgnored, prometheus.CounterValue, float64(sum.Ignored))
	ch <- prometheus.MustNewConstMetric(descHives, prometheus.GaugeValue, float64(sum.Online), api.HiveStateOnline)
	ch <- prometheus.MustNewConstMetric(descHives, prometheus.GaugeValue, float64(sum.Stale), api.HiveStateStale)
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(sum.Workers))
	ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(sum.Clients))
	ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(sum.Evicted))
	ch <- prometheus.MustNewConstMetric(descCoalesced, prometheus.CounterValue, float64(sum.Coalesced))
}

// newMetrics builds the queen's /metrics registry: the fleet it knows, its
// own health, and the Go runtime.
func (s *Server) newMetrics() *prometheus.Registry {
	r := metrics.NewRegistry("queen", s.cfg.Version)
	s.ingest = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rbee_queen_ingest_duration_seconds",
		Help:    "Time to take a heartbeat: wait for a decoder, decode, validate and apply.",
		Buckets: metrics.DurationBuckets,
	})
	r.MustRegister(
		metrics.Fleet{Hives: func() []api.Hive { return s.reg.Hives(nil) }},
		health{s},
		s.ingest,
		metrics.NewCounts("rbee_queen_heartbeats_refused_total", "Heartbeats refused, by reason.", "reason", s.heartbeatRefusals),
		metrics.NewCounts("rbee_queen_worker_entries_dropped_total", "Worker entries of accepted heartbeats dropped for impossible values, and values nulled, by what.", "what",
			func() map[string]uint64 {
				rs := s.reg.Stats()
				return map[string]uint64{"worker_entry": rs.DroppedWorkers, "value": rs.Clamped}
			}),
		metrics.NewCounts("rbee_http_requests_refused_total", "Requests refused before any handler, by reason.", "reason", s.requestRefusals),
	)
	return r
}

// heartbeatRefusals are the heartbeats refused, by reason.
func (s *Server) heartbeatRefusals() map[string]uint64 {
	// Every reason from the start, so a query finds zeros, not nothing.
	out := map[string]uint64{"decode": 0, "wrong_hive": 0}
	maps.Copy(out, s.refused.snapshot())
	rs := s.reg.Stats()
	out["invalid"] = rs.Rejected
	out["rate_limited"] = rs.RateLimited
	out["too_many_hives"] = rs.TooManyHives
	out["hive_id_in_use"] = rs.IDInUse
	return out
}

// requestRefusals are requests refused by the guard or the stream's
// client cap, and connections the listener closed (over the cap, evicted
// unauthenticated, silent), by reason.
func (s *Server) requestRefusals() map[string]uint64 {
	out := s.guard.Refused()
	out["stream_clients_over_max"] = s.broker.Stats().Refused
	if s.ln != nil {
		maps.Copy(out, s.ln.Refusals())
	}
	return out
}
