//go:build linux

package benchmarks

import (
	"bytes"
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

func init() { harness.RegisterHelper("fanout-clients", fanoutClients) }

// fanoutResult is what the fanout-clients helper prints.
type fanoutResult struct {
	Clients int `json:"clients"` // connected
	// Drained: clients that read their gzip stream without inflating it
	// (see inflateEvery); the others parse it.
	Drained    int     `json:"drained"`
	Failed     int     `json:"failed"`      // could not connect, or cut off
	JoinEvents int     `json:"join_events"` // hive_online events received
	JoinP50MS  float64 `json:"join_p50_ms"`
	JoinP99MS  float64 `json:"join_p99_ms"`
	Events     int     `json:"events"` // hive_telemetry in the window
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	// BytesPerClientS is the event data one client received per second
	// in the window.
	BytesPerClientS float64 `json:"bytes_per_client_s"`
}

// fanoutClients connects args[1] clients to the stream at args[0] (token
// in RBEE_BENCH_TOKEN), taking gzip as browsers do (one in inflateEvery
// inflates and parses it), and measures, in a window of args[2] seconds that
// opens args[3] seconds after the first telemetry arrives, each hive_telemetry
// event's delay from the queen's ingest (its "at") to its receipt, and
// the bytes; hive_online events (hives joining) before the window are
// timed the same way from their hive's last_seen. It prints a
// fanoutResult.
func fanoutClients(args []string) int {
	url, token := args[0], os.Getenv("RBEE_BENCH_TOKEN")
	n, _ := strconv.Atoi(args[1])
	secs, _ := strconv.ParseFloat(args[2], 64)
	warm, _ := strconv.ParseFloat(args[3], 64)
	var mu sync.Mutex
	var res fanoutResult
	var join, steady []time.Duration
	var windowBytes int64
	var first time.Time // the first telemetry anyone received
	// Bounded, in case the load never comes.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs*float64(time.Second))+2*time.Minute)
	defer cancel()
	client := &http.Client{Transport: viewerTransport(n, true)}
	var wire atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := openViewer(ctx, client, url, token, os.Getenv("RBEE_FANOUT_ENCODING") != "identity")
			if err != nil {
				mu.Lock()
				res.Failed++
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			body, err := viewerBody(i, resp, &wire)
			mu.Lock()
			res.Clients++
			if body == nil {
				res.Drained++
			}
			mu.Unlock()
			if err != nil {
				panic(fmt.Sprintf("gzip stream: %v", err))
			}
			if body == nil {
				drain(resp, &wire)
				return
			}
			var myJoin, mySteady []time.Duration
			var myBytes int64
			firstAt := first0(&mu, &first)
			_ = readFrames(body, func(typ, head []byte, size int) bool {
				myJoin, mySteady, myBytes = fanoutEvent(typ, head, size, myJoin, mySteady, myBytes, firstAt, warm, secs, cancel)
				return true
			})
			mu.Lock()
			join, steady = append(join, myJoin...), append(steady, mySteady...)
			windowBytes += myBytes
			mu.Unlock()
		})
	}
	wg.Wait()
	res.JoinEvents, res.Events = len(join), len(steady)
	res.JoinP50MS, res.JoinP99MS = ms(quantile(join, 0.5)), ms(quantile(join, 0.99))
	res.P50MS, res.P99MS = ms(quantile(steady, 0.5)), ms(quantile(steady, 0.99))
	if parsed := res.Clients - res.Drained; parsed > 0 {
		res.BytesPerClientS = float64(windowBytes) / float64(parsed) / secs
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return 0
}

// first0 returns the time the first telemetry arrived at any client,
// zero before.
func first0(mu *sync.Mutex, first *time.Time) func(set bool) time.Time {
	return func(set bool) time.Time {
		mu.Lock()
		defer mu.Unlock()
		if set && first.IsZero() {
			*first = time.Now()
		}
		return *first
	}
}

// fanoutEvent accounts one event of type typ whose data (size bytes)
// starts with data:
// a hive_online's delay goes to join; a hive_telemetry's, inside the
// window (warm seconds after the first telemetry, for secs), to steady,
// with its bytes; past the window it ends the run.
func fanoutEvent(typ, data []byte, size int, join, steady []time.Duration, n int64, first func(bool) time.Time, warm, secs float64, cancel func()) ([]time.Duration, []time.Duration, int64) {
	now := time.Now()
	switch string(typ) {
	case api.EventHiveOnline:
		if at, ok := timeField(data, []byte(`"last_seen":"`)); ok {
			join = append(join, now.Sub(at))
		}
	case api.EventHiveTelemetry:
		from := first(true).Add(time.Duration(warm * float64(time.Second)))
		switch {
		case now.Before(from):
		case now.After(from.Add(time.Duration(secs * float64(time.Second)))):
			cancel()
		default:
			if at, ok := timeField(data, []byte(`"at":"`)); ok {
				steady = append(steady, now.Sub(at))
			}
			n += int64(size)
		}
	}
	return join, steady, n
}

// timeField finds key (`"at":"`) in data and parses the RFC 3339 time
// after it.
func timeField(data, key []byte) (time.Time, bool) {
	i := bytes.Index(data, key)
	if i < 0 {
		return time.Time{}, false
	}
	rest := data[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}

// BenchmarkStreamFanout is 1,000 stream clients (Go SSE clients in a
// process of their own) watching 10 hives × 100 workers: first the 10
// hives join at once (join-p50-ms, join-p99-ms: from the queen's ingest of
// a hive's first heartbeat to its hive_online at a client; ours: p99 <
// 250 ms), then
// they heartbeat at 1 Hz for 10 s (p50-ms and p99-ms: ingest to receipt
// of each hive_telemetry, ours: p99 < 50 ms; KB/client-s: ours ≤ 120), and
// the queen's CPU over the whole. -short: 100 clients for 3 s.
// RBEE_FANOUT_ENCODING=identity: the clients do not take gzip.
// RBEE_BENCH_BASELINE=<git ref> runs that revision's queen beside this
// one.
func BenchmarkStreamFanout(b *testing.B) {
	clients, secs := 1000, 10
	if v, err := strconv.Atoi(os.Getenv("RBEE_FANOUT_CLIENTS")); err == nil {
		clients = v
	}
	if testing.Short() {
		clients, secs = 100, 3
	}
	for _, tree := range baselineQueen(b) {
		b.Run("tree="+tree.name, func(b *testing.B) {
			for b.Loop() {
				fanout(b, tree.bin, clients, secs)
			}
		})
	}
}

func fanout(b *testing.B, bin string, clients, secs int) {
	const hives = 10
	queen := harness.StartDaemon(b, harness.DaemonConfig{Name: "queen", Bin: bin, Args: []string{"--listen", "127.0.0.1:0"}})
	fleet := loadgen.Fleet("fan", hives, 100, 8)
	rounds, err := loadgen.Rounds(fleet, secs+3)
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan harness.HelperResult, 1)
	b.Setenv("RBEE_BENCH_TOKEN", harness.Token)
	go func() {
		// The window opens a second into the steady phase: the join
		// brings the first telemetry, five seconds before it.
		out <- harness.RunHelper(b, nil, "fanout-clients", queen.URL+"/v1/heartbeats/stream", strconv.Itoa(clients), strconv.Itoa(secs), "6")
	}()
	harness.WaitFor(b, 60*time.Second, func() error {
		var info api.QueenInfo
		harness.Get(b, queen.URL+"/v1/info", &info)
		if info.Clients < int64(clients) {
			return fmt.Errorf("%d of %d clients connected", info.Clients, clients)
		}
		return nil
	})
	m, err := harness.NewMeter(queen.Pid())
	if err != nil {
		b.Fatal(err)
	}
	p := newPoster(queen.URL)
	p.post(rounds[0], hives) // the hives join, all at once
	// Apart from the steady phase: the join is a burst of its own.
	time.Sleep(5 * time.Second)
	var res harness.HelperResult
steady:
	for _, r := range rounds[1:] {
		select {
		case res = <-out:
			break steady
		default:
		}
		paced(p, r, time.Second)
	}
	if res.Stdout == "" {
		res = <-out
	}
	cores, _, err := m.Read()
	if err != nil {
		b.Fatal(err)
	}
	p.check(b)
	var fr fanoutResult
	if err := json.Unmarshal([]byte(res.Stdout), &fr); err != nil || res.Code != 0 {
		b.Fatalf("fanout clients: exit %d, %v\n%s\n%s", res.Code, err, res.Stdout, res.Stderr)
	}
	if fr.Clients != clients || fr.Failed > 0 || fr.Events == 0 || fr.JoinEvents < (clients-fr.Drained)*hives {
		b.Fatalf("fanout clients: %+v", fr)
	}
	b.ReportMetric(fr.JoinP50MS, "join-p50-ms")
	b.ReportMetric(fr.JoinP99MS, "join-p99-ms")
	b.ReportMetric(fr.P50MS, "p50-ms")
	b.ReportMetric(fr.P99MS, "p99-ms")
	b.ReportMetric(fr.BytesPerClientS/1000, "KB/client-s")
	b.ReportMetric(cores, "queen-cores")
	queen.Stop()
}
