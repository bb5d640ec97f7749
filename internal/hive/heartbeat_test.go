package hive

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/telemetry"
)

func TestBackoffNeverExceedsInterval(t *testing.T) {
	s := newSender("http://x", "", time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	prev := time.Duration(0)
	for n := 1; n <= 20; n++ {
		s.failures = n
		d := s.backoff()
		if d <= 0 || d > time.Second {
			t.Fatalf("backoff after %d failures = %v, want (0, 1s]", n, d)
		}
		if n <= 3 && d < prev/2 {
			t.Fatalf("backoff shrank: %v after %v", d, prev)
		}
		prev = d
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The queen answers 500 for a while, then recovers: the sender logs the
// outage once, keeps trying no slower than once an interval, and delivers
// within an interval of recovery.
func TestSenderRetriesAndLogsOnce(t *testing.T) {
	var healthy atomic.Bool
	var got atomic.Int64
	var gzipped atomic.Bool
	queen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Encoding") == "gzip" {
			gzipped.Store(true)
		}
		if !healthy.Load() {
			http.Error(w, `{"error":"down for maintenance"}`, 500)
			return
		}
		got.Add(1)
		w.Write([]byte(`{"ignored":false}`))
	}))
	defer queen.Close()
	var log syncBuf
	const interval = 200 * time.Millisecond
	workers := make([]telemetry.Worker, 20) // big enough to be gzipped
	for i := range workers {
		workers[i] = telemetry.Worker{ID: strings.Repeat("w", 60)}
	}
	s := newSender(queen.URL, "", interval, slog.New(slog.NewTextHandler(&log, nil)), func(seq uint64) telemetry.Heartbeat {
		return telemetry.Heartbeat{HiveID: "h", Seq: seq, Workers: workers}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	time.Sleep(5 * interval) // an outage of several intervals
	fails, _ := s.state()
	if fails < 5 {
		t.Fatalf("%d attempts during 5 intervals of outage, want at least one per interval", fails)
	}
	healthy.Store(true)
	back := time.Now()
	for got.Load() == 0 {
		if time.Since(back) > interval+100*time.Millisecond {
			t.Fatalf("no delivery within one interval of the queen's recovery")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The queen counts the delivery before the sender has its answer:
	// wait for the sender to have seen it too.
	for fails, _ := s.state(); fails != 0; fails, _ = s.state() {
		if time.Since(back) > 5*time.Second {
			t.Fatalf("the sender still counts %d failures after the queen recovered", fails)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	out := log.String()
	if n := strings.Count(out, "queen unreachable"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "down for maintenance") || !strings.Contains(out, "queen reachable again") {
		t.Fatalf("log does not name the error and the recovery:\n%s", out)
	}
	if !gzipped.Load() {
		t.Fatal("a large heartbeat was not gzipped")
	}
}
