//go:build linux

package benchmarks

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/api"
)

// poster sends encoded heartbeats to a queen from a few connections at
// once and counts what it refused.
type poster struct {
	url     string
	client  *http.Client
	errs    atomic.Int64
	lastErr atomic.Value
}

func newPoster(url string) *poster {
	return &poster{url: url, client: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}}
}

// post sends bodies from n goroutines and waits.
func (p *poster) post(bodies []loadgen.Body, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				p.one(bodies[i])
			}
		})
	}
	wg.Wait()
}

func (p *poster) one(b loadgen.Body) {
	if _, err := loadgen.PostBody(context.Background(), p.client, p.url, harness.Token, b.Data, b.Gzipped); err != nil {
		p.errs.Add(1)
		p.lastErr.Store(err.Error())
	}
}

// check fails b if any heartbeat was refused.
func (p *poster) check(b *testing.B) {
	if n := p.errs.Load(); n > 0 {
		b.Fatalf("%d heartbeats refused; last: %v", n, p.lastErr.Load())
	}
}

// joinFleet makes hives hives of 100 workers (8 GPUs) and posts their
// first heartbeats, static fields and all, to the queen at url.
func joinFleet(b *testing.B, url, prefix string, hives int) ([]*loadgen.Hive, *poster) {
	b.Helper()
	fleet := loadgen.Fleet(prefix, hives, 100, 8)
	first, err := loadgen.Rounds(fleet, 1)
	if err != nil {
		b.Fatal(err)
	}
	p := newPoster(url)
	p.post(first[0], 8)
	p.check(b)
	return fleet, p
}

// BenchmarkQueenIngest is the queen's CPU per steady 100-worker heartbeat
// (gzip, as hives send them) with 100 stream clients attached, measured
// on the queen process: queen-us/hb and hb/core-s (ours: ≥ 4,000). One
// client is a dashboard that takes everything, so every heartbeat builds,
// encodes and sends its telemetry; 99 take worker events only, as routers
// do (what writing telemetry to a thousand dashboards costs is
// BenchmarkStreamFanout's). 500 hives take turns, so none is rate limited.
func BenchmarkQueenIngest(b *testing.B) {
	queen := harness.StartQueen(b)
	dash := harness.CountStream(b, queen.URL+"/v1/heartbeats/stream")
	for range 99 {
		harness.Subscribe(b, queen.URL+"/v1/heartbeats/stream?types=worker_added,worker_removed,worker_changed", harness.SSEOptions{})
	}
	hives := 500
	if testing.Short() {
		hives = 50
	}
	fleet, p := joinFleet(b, queen.URL, "ingest", hives)
	// At least two rounds of the fleet, whatever b.N: the queen's CPU is
	// counted in 10 ms ticks.
	n := max(b.N, 2*hives)
	rounds, err := loadgen.Rounds(fleet, n/hives+1)
	if err != nil {
		b.Fatal(err)
	}
	var bodies []loadgen.Body
	for _, r := range rounds {
		bodies = append(bodies, r...)
	}
	bodies = bodies[:n]
	m, err := harness.NewMeter(queen.Pid())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.ResetTimer()
	p.post(bodies, 4)
	b.StopTimer()
	cores, rss, err := m.Read()
	if err != nil {
		b.Fatal(err)
	}
	p.check(b)
	cpu := cores * time.Since(start).Seconds() / float64(n)
	if got := dash.Count("hive_telemetry"); got < n/2 {
		b.Fatalf("the dashboard client got %d telemetry events for %d heartbeats", got, n)
	}
	b.ReportMetric(cpu*1e6, "queen-us/hb")
	b.ReportMetric(1/cpu, "hb/core-s")
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
}

// BenchmarkQueenRSS is the queen's memory holding 100 hives × 100 workers
// (10,000 workers) with a stream client attached, its replay buffer full
// of their telemetry: rss-MiB, and MiB-per-10k-workers over an empty
// queen's RSS (ours: ≤ 64 MiB in all). Each op is one round of steady
// heartbeats from every hive.
func BenchmarkQueenRSS(b *testing.B) {
	queen := harness.StartQueen(b)
	harness.Subscribe(b, queen.URL+"/v1/heartbeats/stream?types=queen", harness.SSEOptions{})
	time.Sleep(200 * time.Millisecond)
	empty, err := harness.ProcUsage(queen.Pid())
	if err != nil {
		b.Fatal(err)
	}
	const hives, workers = 100, 100
	fleet := loadgen.Fleet("rss", hives, workers, 8)
	p := newPoster(queen.URL)
	// Enough rounds to fill the replay buffer before measuring.
	warm, err := loadgen.Rounds(fleet, 20)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range warm {
		p.post(r, 4)
	}
	p.check(b)
	steady, err := loadgen.Rounds(fleet, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		t := time.Now()
		p.post(steady[i], 4)
		b.StopTimer()
		time.Sleep(max(0, 100*time.Millisecond-time.Since(t)))
		b.StartTimer()
	}
	p.check(b)
	u, err := harness.ProcUsage(queen.Pid())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(u.RSS)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(u.RSS-min(u.RSS, empty.RSS))/(1<<20)*10000/(hives*workers), "MiB-per-10k-workers")
}

// BenchmarkQueenFleet is a fleet of 1,000 hives × 100 workers (100,000
// workers) at 1 Hz against one queen, from a load generator in this
// process (ours: every heartbeat applied, the queen ≤ 0.5 core, RSS ≤
// 256 MiB). Each op is one second of the fleet, its heartbeats spread
// over the second as unsynchronised hives send them; at least 10 seconds
// whatever -benchtime says. -short: 100 hives for 2 seconds.
// RBEE_BENCH_BASELINE=<git ref> runs that revision's queen beside this
// one.
func BenchmarkQueenFleet(b *testing.B) {
	for _, tree := range baselineQueen(b) {
		b.Run("tree="+tree.name, func(b *testing.B) { queenFleet(b, tree.bin) })
	}
}

func queenFleet(b *testing.B, bin string) {
	queen := harness.StartDaemon(b, harness.DaemonConfig{Name: "queen", Bin: bin, Args: []string{"--listen", "127.0.0.1:0"}})
	hives, secs := 1000, 10
	if testing.Short() {
		hives, secs = 100, 2
	}
	secs = max(secs, b.N)
	fleet, p := joinFleet(b, queen.URL, "fleet", hives)
	steady, err := loadgen.Rounds(fleet, secs)
	if err != nil {
		b.Fatal(err)
	}
	var before api.QueenInfo
	harness.Get(b, queen.URL+"/v1/info", &before)
	m, err := harness.NewMeter(queen.Pid())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range secs {
		paced(p, steady[i], time.Second)
	}
	b.StopTimer()
	sent := secs * hives
	cores, rss, err := m.Read()
	if err != nil {
		b.Fatal(err)
	}
	var after api.QueenInfo
	harness.Get(b, queen.URL+"/v1/info", &after)
	applied := after.Heartbeats - before.Heartbeats
	b.ReportMetric(float64(applied)/float64(sent), "applied-ratio")
	if applied != uint64(sent) {
		b.Errorf("%d of %d heartbeats applied", applied, sent)
	}
	b.ReportMetric(cores, "queen-cores")
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
	if p.errs.Load() > 0 {
		b.Logf("%d heartbeats refused; last: %v", p.errs.Load(), p.lastErr.Load())
	}
}

// paced posts bodies evenly over d from enough goroutines that a slow
// answer does not hold up the schedule, and returns when all are answered.
func paced(p *poster, bodies []loadgen.Body, d time.Duration) {
	start := time.Now()
	gap := d / time.Duration(len(bodies))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, body := range bodies {
		time.Sleep(time.Until(start.Add(time.Duration(i) * gap)))
		sem <- struct{}{}
		wg.Go(func() {
			p.one(body)
			<-sem
		})
	}
	wg.Wait()
	time.Sleep(time.Until(start.Add(d)))
}
