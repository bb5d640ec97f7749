//go:build linux

package benchmarks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/api"
)

func init() { harness.RegisterHelper("connect-clients", connectClients) }

// connectResult is what the connect-clients helper prints.
type connectResult struct {
	Clients int `json:"clients"` // got their snapshot
	// Drained: viewers that read their gzip stream without inflating it
	// (see inflateEvery).
	Drained int `json:"drained"`
	Failed  int `json:"failed"`
	// Snapshot: from a client's request to its snapshot received whole.
	SnapP50MS float64 `json:"snap_p50_ms"`
	SnapP99MS float64 `json:"snap_p99_ms"`
	// Events: hive_telemetry in each client's window, from the queen's
	// ingest ("at") to receipt.
	Events int     `json:"events"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	// WireBytesPerClientS is what one client read off the socket per
	// second of its window (compressed, when it took gzip); DataBytes the
	// event data after decoding.
	WireBytesPerClientS float64 `json:"wire_bytes_per_client_s"`
	DataBytesPerClientS float64 `json:"data_bytes_per_client_s"`
}

// connectClients connects args[1] clients at once to the stream at args[0]
// (token in RBEE_BENCH_TOKEN), asking for gzip when args[3] is "gzip" (as
// browsers do), and reads each for its first args[2] seconds: when its
// snapshot arrived, each hive_telemetry's delay, the bytes (of gzip
// viewers, one in inflateEvery parses). It prints a connectResult.
func connectClients(args []string) int {
	url, token := args[0], os.Getenv("RBEE_BENCH_TOKEN")
	n, _ := strconv.Atoi(args[1])
	secs, _ := strconv.ParseFloat(args[2], 64)
	window := time.Duration(secs * float64(time.Second))
	useGzip := args[3] == "gzip"
	var mu sync.Mutex
	var res connectResult
	var snaps, delays []time.Duration
	var wire, data atomic.Int64
	// The transport must not add Accept-Encoding of its own: what is
	// asked for is this helper's choice, and the wire bytes are counted
	// before decoding.
	client := &http.Client{Transport: viewerTransport(n, true)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), window+time.Minute)
			defer cancel()
			<-start
			t0 := time.Now()
			resp, err := openViewer(ctx, client, url, token, useGzip)
			fail := func() {
				mu.Lock()
				res.Failed++
				mu.Unlock()
			}
			if err != nil {
				fail()
				return
			}
			defer resp.Body.Close()
			end := t0.Add(window)
			// Stop reading at the window's end, even with nothing arriving.
			stop := time.AfterFunc(window, cancel)
			defer stop.Stop()
			body, err := viewerBody(i, resp, &wire)
			if err != nil {
				fail()
				return
			}
			if body == nil {
				drain(resp, &wire)
				mu.Lock()
				res.Drained++
				mu.Unlock()
				return
			}
			var mySnap time.Duration
			var myDelays []time.Duration
			var myData int64
			_ = readFrames(body, func(typ, head []byte, size int) bool {
				now := time.Now()
				if now.After(end) {
					return false
				}
				myData += int64(size)
				switch string(typ) {
				case api.EventSnapshot:
					mySnap = now.Sub(t0)
				case api.EventHiveTelemetry:
					if at, ok := timeField(head, []byte(`"at":"`)); ok {
						myDelays = append(myDelays, now.Sub(at))
					}
				}
				return true
			})
			data.Add(myData)
			mu.Lock()
			defer mu.Unlock()
			if mySnap == 0 {
				res.Failed++
				return
			}
			res.Clients++
			snaps, delays = append(snaps, mySnap), append(delays, myDelays...)
		})
	}
	close(start)
	wg.Wait()
	res.Events = len(delays)
	res.SnapP50MS, res.SnapP99MS = ms(quantile(snaps, 0.5)), ms(quantile(snaps, 0.99))
	res.P50MS, res.P99MS = ms(quantile(delays, 0.5)), ms(quantile(delays, 0.99))
	res.WireBytesPerClientS = float64(wire.Load()) / float64(n) / secs
	res.DataBytesPerClientS = float64(data.Load()) / float64(max(res.Clients, 1)) / secs
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return 0
}

// baselineQueen returns the queen binaries to compare: this tree's, and,
// when RBEE_BENCH_BASELINE names a git revision, that revision's, built
// from this repository, so one run measures both on the same machine.
func baselineQueen(b *testing.B) []struct{ name, bin string } {
	trees := []struct{ name, bin string }{{"this", harness.Build(b, "cmd/queen-rbee")}}
	if ref := os.Getenv("RBEE_BENCH_BASELINE"); ref != "" {
		trees = append(trees, struct{ name, bin string }{"baseline", harness.BuildAt(b, ref, "cmd/queen-rbee")})
	}
	return trees
}

// BenchmarkStreamConnectBurst is 1,000 viewers (a process of their own)
// connecting at once to a queen that already holds 10 hives × 100
// workers, while the hives keep reporting at 1 Hz, each read for its
// first 10 s: snap-p99-ms (request to whole snapshot), p99-ms (each
// hive_telemetry from the queen's ingest to receipt; ours: both < 250
// ms), KB/viewer-s on the wire (ours: ≤ 120), the queen's CPU seconds
// over the burst and its RSS after. The viewers take gzip, as browsers
// do (enc=gzip), or not (enc=identity, as curl without --compressed).
// RBEE_BENCH_BASELINE=<git ref> runs that revision's queen beside this
// one. -short: 100 viewers for 3 s.
func BenchmarkStreamConnectBurst(b *testing.B) {
	viewers, secs := 1000, 10
	if v, err := strconv.Atoi(os.Getenv("RBEE_CONNECT_VIEWERS")); err == nil {
		viewers = v
	}
	if testing.Short() {
		viewers, secs = 100, 3
	}
	const hives = 10
	for _, tree := range baselineQueen(b) {
		for _, enc := range []string{"gzip", "identity"} {
			b.Run(fmt.Sprintf("tree=%s/enc=%s", tree.name, enc), func(b *testing.B) {
				for b.Loop() {
					connectBurst(b, tree.bin, enc, viewers, hives, secs)
				}
			})
		}
	}
}

func connectBurst(b *testing.B, bin, enc string, viewers, hives, secs int) {
	queen := harness.StartDaemon(b, harness.DaemonConfig{Name: "queen", Bin: bin, Args: []string{"--listen", "127.0.0.1:0"}})
	defer queen.Stop()
	fleet := loadgen.Fleet("con", hives, 100, 8)
	rounds, err := loadgen.Rounds(fleet, secs+5)
	if err != nil {
		b.Fatal(err)
	}
	p := newPoster(queen.URL)
	p.post(rounds[0], hives)
	// The hives keep reporting through the burst.
	ctx, cancel := context.WithCancel(context.Background())
	var reporting sync.WaitGroup
	reporting.Go(func() {
		for _, r := range rounds[1:] {
			if ctx.Err() != nil {
				return
			}
			paced(p, r, time.Second)
		}
	})
	defer func() { cancel(); reporting.Wait() }()
	time.Sleep(2 * time.Second) // the queen holds the fleet, its telemetry flowing
	b.Setenv("RBEE_BENCH_TOKEN", harness.Token)
	m, err := harness.NewMeter(queen.Pid())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	res := harness.RunHelper(b, nil, "connect-clients", queen.URL+"/v1/heartbeats/stream", strconv.Itoa(viewers), strconv.Itoa(secs), enc)
	cores, rss, err := m.Read()
	if err != nil {
		b.Fatal(err)
	}
	cpu := cores * time.Since(start).Seconds()
	cancel()
	reporting.Wait()
	p.check(b)
	var cr connectResult
	if err := json.Unmarshal([]byte(res.Stdout), &cr); err != nil || res.Code != 0 {
		b.Fatalf("connect clients: exit %d, %v\n%s\n%s", res.Code, err, res.Stdout, res.Stderr)
	}
	if cr.Clients+cr.Drained != viewers || cr.Clients == 0 || cr.Failed > 0 || cr.Events == 0 {
		b.Fatalf("connect clients: %+v", cr)
	}
	b.ReportMetric(cr.SnapP99MS, "snap-p99-ms")
	b.ReportMetric(cr.P50MS, "p50-ms")
	b.ReportMetric(cr.P99MS, "p99-ms")
	b.ReportMetric(cr.WireBytesPerClientS/1000, "KB/viewer-s")
	b.ReportMetric(cr.DataBytesPerClientS/1000, "data-KB/viewer-s")
	b.ReportMetric(cpu, "queen-cpu-s")
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
}
