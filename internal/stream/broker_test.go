package stream_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/stream"
)

func TestMain(m *testing.M) { harness.Main(m) }

func newBroker(t *testing.T, cfg stream.Config) (*stream.Broker, string) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Coalesce == "" {
		cfg.Coalesce = "hive_telemetry"
	}
	b, err := stream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		srv.Close()
	})
	return b, srv.URL
}

type payload struct {
	N    int       `json:"n"`
	Hive string    `json:"hive"`
	At   time.Time `json:"at"`
	Pad  string    `json:"pad,omitempty"`
}

func waitClients(t *testing.T, b *stream.Broker, n int64) {
	t.Helper()
	harness.WaitFor(t, 5*time.Second, func() error {
		if c := b.Stats().Clients; c != n {
			return fmt.Errorf("%d clients connected, want %d", c, n)
		}
		return nil
	})
}

func TestEventsHaveTypesIDsAndJSON(t *testing.T) {
	b, url := newBroker(t, stream.Config{})
	c1 := harness.Subscribe(t, url, harness.SSEOptions{})
	c2 := harness.Subscribe(t, url, harness.SSEOptions{})
	waitClients(t, b, 2)
	for i, typ := range []string{"hive_online", "worker_added", "worker_removed"} {
		if err := b.Publish(typ, "h1", payload{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*harness.SSEClient{c1, c2} {
		c.WaitType(5*time.Second, 0, "worker_removed")
		evs := c.Events()
		if len(evs) != 3 {
			t.Fatalf("%d events, want 3: %+v", len(evs), evs)
		}
		for i, e := range evs {
			var p payload
			if err := e.Decode(&p); err != nil || p.N != i || e.ID != fmt.Sprint(i+1) {
				t.Fatalf("event %d: id %q type %s data %s (%v)", i, e.ID, e.Type, e.Data, err)
			}
		}
	}
	if s := b.Stats(); s.Published != 3 || s.Evicted != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReconnectWithLastEventIDReplaysMissed(t *testing.T) {
	b, url := newBroker(t, stream.Config{})
	c := harness.Subscribe(t, url, harness.SSEOptions{})
	waitClients(t, b, 1)
	for i := range 5 {
		_ = b.Publish("worker_added", "", payload{N: i})
	}
	last, _ := c.WaitFor(5*time.Second, 0, func(e harness.Event) bool { return e.ID == "5" })
	c.Close()
	waitClients(t, b, 0)
	for i := 5; i < 10; i++ {
		_ = b.Publish("worker_added", "", payload{N: i})
	}
	r := harness.Subscribe(t, url, harness.SSEOptions{LastEventID: last.ID})
	r.WaitFor(5*time.Second, 0, func(e harness.Event) bool { return e.ID == "10" })
	var ids []string
	for _, e := range r.Events() {
		ids = append(ids, e.ID)
	}
	if strings.Join(ids, ",") != "6,7,8,9,10" {
		t.Fatalf("replayed ids %v, want 6..10", ids)
	}
}

func TestKeepAlives(t *testing.T) {
	_, url := newBroker(t, stream.Config{KeepAlive: 50 * time.Millisecond})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var comments int
	deadline := time.Now().Add(5 * time.Second)
	for comments < 3 && time.Now().Before(deadline) && sc.Scan() {
		if sc.Text() == ": keep-alive" {
			comments++
		}
	}
	if comments < 3 {
		t.Fatalf("%d keep-alive comments, want 3", comments)
	}
}

// A client that stops reading must not delay a fast client or the
// publisher, and is disconnected and counted once its queue overflows.
func TestSlowClientDoesNotDelayOthers(t *testing.T) {
	b, url := newBroker(t, stream.Config{QueueSize: 256, WriteTimeout: 2 * time.Second})
	fast := harness.Subscribe(t, url, harness.SSEOptions{})
	stalled := harness.StalledReader(t, url, nil)
	defer stalled.Close()
	waitClients(t, b, 2)

	pad := strings.Repeat("x", 4096) // fills the stalled socket quickly
	const n = 3000
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		// Worker events do not coalesce: the stalled queue must overflow.
		if err := b.Publish("worker_added", "", payload{N: i, At: time.Now(), Pad: pad}); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
		// About 5000 events (20 MB) a second: far above what a cluster
		// sends, yet a rate a healthy reader can follow; an unpaced loop
		// outruns any reader and would rightly evict the fast one too.
		if i%10 == 9 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	fast.WaitFor(10*time.Second, 0, func(e harness.Event) bool { return e.ID == fmt.Sprint(n) })
	var lat []time.Duration
	for _, e := range fast.Events() {
		var p payload
		if err := e.Decode(&p); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, e.At.Sub(p.At))
	}
	slices.Sort(lat)
	t.Logf("fast client: %d events, delivery latency median %v, p99 %v, max %v; slowest Publish %v",
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], slowest)
	if len(lat) != n {
		t.Fatalf("fast client got %d of %d events", len(lat), n)
	}
	// On this shared 2-core machine a scheduling hiccup can cost tens of
	// milliseconds; a client blocked behind the stalled one would wait the
	// whole 2 s write timeout.
	if p99 := lat[len(lat)*99/100]; p99 > 500*time.Millisecond {
		t.Fatalf("fast client p99 latency %v: held up by the stalled client", p99)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if s := b.Stats(); s.Evicted != 1 || s.Clients != 1 {
			return fmt.Errorf("stats %+v, want the stalled client evicted", s)
		}
		return nil
	})
}

// hive_telemetry events of one hive coalesce in a slow client's queue, so
// a reader that falls behind sees each hive's newest state, not a backlog.
func TestTelemetryCoalescesForSlowReader(t *testing.T) {
	b, url := newBroker(t, stream.Config{QueueSize: 16, WriteTimeout: 5 * time.Second})
	stalled := harness.StalledReader(t, url, nil)
	waitClients(t, b, 1)
	pad := strings.Repeat("y", 8192)
	// Far more telemetry than the queue holds, for 4 hives: coalescing
	// keeps the queue at most 4 deep for them, so nothing is evicted.
	for i := range 2000 {
		if err := b.Publish("hive_telemetry", fmt.Sprintf("h%d", i%4), payload{N: i, Pad: pad}); err != nil {
			t.Fatal(err)
		}
	}
	s := b.Stats()
	if s.Evicted != 0 || s.Coalesced == 0 {
		t.Fatalf("stats %+v: telemetry must coalesce instead of evicting", s)
	}
	stalled.Close()
}
