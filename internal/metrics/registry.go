package metrics

import (
	"maps"
	"net/http"
	"runtime"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process
// collectors and rbee_build_info for daemon ("queen" or "hive").
func NewRegistry(daemon, version string) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "rbee_build_info",
			Help:        "The running daemon (1), with its version and the Go that built it.",
			ConstLabels: prometheus.Labels{"daemon": daemon, "version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	)
	return r
}

// Handler serves r in the Prometheus text or OpenMetrics format. A
// collector that fails is reported in its own lines and the rest still
// served.
func Handler(r *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		EnableOpenMetrics:   true,
		MaxRequestsInFlight: 4,
		Registry:            r,
	})
}

// Counts is a collector of one counter with a label, read from a map at
// scrape time: refusals by reason, failures by cause.
type Counts struct {
	Desc *prometheus.Desc
	Read func() map[string]uint64
}

// NewCounts returns Counts for a counter named name with one label.
func NewCounts(name, help, label string, read func() map[string]uint64) Counts {
	return Counts{Desc: prometheus.NewDesc(name, help, []string{label}, nil), Read: read}
}

// Describe sends the counter's descriptor.
func (c Counts) Describe(ch chan<- *prometheus.Desc) { ch <- c.Desc }

// Collect sends one sample per key, in key order.
func (c Counts) Collect(ch chan<- prometheus.Metric) {
	m := c.Read()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ch <- prometheus.MustNewConstMetric(c.Desc, prometheus.CounterValue, float64(m[k]), k)
	}
}

// DurationBuckets are the histogram buckets of rbee's internal timings:
// 100 µs to 10 s.
var DurationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
