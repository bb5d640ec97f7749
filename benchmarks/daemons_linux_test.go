//go:build linux

package benchmarks

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// The benchmarks in this file run the real daemons (built by the
// harness) on loopback and measure them from outside, through /proc and
// their APIs: what an operator's monitoring would see.

// BenchmarkHiveOverhead is what a hive costs at 100 workers, collecting
// and heartbeating once a second: CPU as % of one core and RSS of the hive
// process (ours: ≤ 0.5 % and ≤ 32 MiB). Each op is one interval; the
// window is at least 20 s (-short: 2 s) whatever -benchtime says, as the
// kernel counts CPU time in 10 ms ticks.
func BenchmarkHiveOverhead(b *testing.B) {
	queen := harness.StartQueen(b)
	hive := harness.StartHive(b, harness.HiveOptions{Queen: queen.URL})
	const n = 100
	for i := range n {
		code, body := harness.Call(b, "POST", hive.URL+"/v1/workers", api.SpawnRequest{Group: "bench", Instance: fmt.Sprintf("w%03d", i),
			Binary: "/bin/sleep", Args: []string{"3600"}, MemoryLimit: "64Mi"})
		if code != http.StatusCreated {
			b.Fatalf("spawn %d: %d %s", i, code, body)
		}
	}
	waitWorkers(b, queen, n)
	time.Sleep(2 * time.Second) // past the spawns' immediate heartbeats
	m, err := harness.NewMeter(hive.Pid())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		time.Sleep(time.Second)
	}
	window := 20 * time.Second
	if testing.Short() {
		window = 2 * time.Second
	}
	time.Sleep(window - time.Since(start))
	cores, rss, err := m.Read()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(cores*100, "cpu-%")
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
}

// waitWorkers waits until the queen lists n workers.
func waitWorkers(b *testing.B, queen *harness.Daemon, n int) {
	b.Helper()
	harness.WaitFor(b, 60*time.Second, func() error {
		var info api.QueenInfo
		harness.Get(b, queen.URL+"/v1/info", &info)
		if info.Workers != n {
			return fmt.Errorf("queen lists %d workers, want %d", info.Workers, n)
		}
		return nil
	})
}

// BenchmarkSSELatency is the time from a spawn request to the worker's
// worker_added at a stream client (seed target: < 100 ms; ours: p99 < 30
// ms), on loopback with the real binaries, each stage timed on its own
// from the event's timestamps (one machine, one clock):
//
//   - spawn-ms: the request until the hive answers 201 (cgroup, process);
//   - collect-ms: the answer until the hive sends the heartbeat (sent_at;
//     the hive collects and sends at once after a spawn);
//   - ingest-ms: sent_at until the queen applied it (at): transit, inflate,
//     decode, registry;
//   - deliver-ms: at until the client has the event: publish, fan-out,
//     write, and the client's parse.
//
// ns/op is the whole, per spawn; p50-ms and p99-ms are over all spawns.
func BenchmarkSSELatency(b *testing.B) {
	queen := harness.StartQueen(b)
	events := harness.Subscribe(b, queen.URL+"/v1/heartbeats/stream?types=hive_online,worker_added", harness.SSEOptions{})
	hive := harness.StartHive(b, harness.HiveOptions{Queen: queen.URL})
	_, next := events.WaitType(10*time.Second, 0, api.EventHiveOnline)
	var spawn, collect, ingest, deliver, total []time.Duration
	const pace = 250 * time.Millisecond
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench-l%04d", i)
		t0 := time.Now()
		code, body := harness.Call(b, "POST", hive.URL+"/v1/workers", api.SpawnRequest{Group: "bench", Instance: fmt.Sprintf("l%04d", i),
			Binary: "/bin/sleep", Args: []string{"3600"}, MemoryLimit: "64Mi"})
		t1 := time.Now()
		if code != http.StatusCreated {
			b.Fatalf("spawn: %d %s", code, body)
		}
		ev, idx := events.WaitFor(5*time.Second, next, harness.Brings(id))
		next = idx + 1
		b.StopTimer()
		var d api.WorkerAdded
		if err := ev.Decode(&d); err != nil || ev.Type != api.EventWorkerAdded {
			b.Fatalf("%s %s: %v", ev.Type, ev.Data, err)
		}
		spawn, collect = append(spawn, t1.Sub(t0)), append(collect, d.SentAt.Sub(t1))
		ingest, deliver = append(ingest, d.At.Sub(d.SentAt)), append(deliver, ev.At.Sub(d.At))
		total = append(total, ev.At.Sub(t0))
		// Stop it again, so the hive stays at one worker, and pace the
		// spawns (four a second) as an operator or autoscaler would: a
		// tighter churn only measures the hive coalescing its heartbeats.
		if code, body := harness.Call(b, "DELETE", hive.URL+"/v1/workers/"+id, nil); code != http.StatusOK {
			b.Fatalf("stop: %d %s", code, body)
		}
		time.Sleep(time.Until(t0.Add(pace)))
		i++
		b.StartTimer()
	}
	b.ReportMetric(ms(median(spawn)), "spawn-ms")
	b.ReportMetric(ms(median(collect)), "collect-ms")
	b.ReportMetric(ms(median(ingest)), "ingest-ms")
	b.ReportMetric(ms(median(deliver)), "deliver-ms")
	b.ReportMetric(ms(median(total)), "p50-ms")
	b.ReportMetric(ms(quantile(total, 0.99)), "p99-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration { return quantile(ds, 0.5) }

// quantile is the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
