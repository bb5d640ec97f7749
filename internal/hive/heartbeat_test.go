package hive

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

func TestBackoffNeverExceedsInterval(t *testing.T) {
	s := newSender(senderConfig{QueenURL: "http://x", Interval: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	workers := make([]api.Worker, 20) // big enough to be gzipped
	for i := range workers {
		workers[i] = api.Worker{ID: strings.Repeat("w", 60)}
	}
	s := newSender(senderConfig{QueenURL: queen.URL, Interval: interval, Log: slog.New(slog.NewTextHandler(&log, nil)),
		Build: func() (api.Heartbeat, []api.Worker) { return api.Heartbeat{HiveID: "h"}, workers }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	time.Sleep(5 * interval) // an outage of several intervals
	fails := s.info().Failures
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
	for fails := s.info().Failures; fails != 0; fails = s.info().Failures {
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

// A queen that answers and refuses is said as such, with its words, not
// as unreachable: the fix is the hive's token or id, not the network.
func TestSenderSaysARefusal(t *testing.T) {
	queen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"this token belongs to hive gpu-2"}`, http.StatusForbidden)
	}))
	defer queen.Close()
	var log syncBuf
	s := newSender(senderConfig{QueenURL: queen.URL, Interval: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&log, nil)),
		Build: func() (api.Heartbeat, []api.Worker) { return api.Heartbeat{HiveID: "h"}, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); s.info().Failures < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	out := log.String()
	if !strings.Contains(out, "queen refused the heartbeat; the hive keeps working and retries") || !strings.Contains(out, "this token belongs to hive gpu-2") || strings.Contains(out, "unreachable") {
		t.Fatalf("a 403 was not said as a refusal:\n%s", out)
	}
}

// A queen that answers "ignored" (it holds a newer sequence number of this
// session: someone spoke for the hive, or the hive's state went back) makes
// the hive start a new session at once instead of staying silent; worker
// entries the queen dropped are logged.
func TestSenderResyncsWhenIgnored(t *testing.T) {
	var mu sync.Mutex
	var sessions []string
	var seqs []uint64
	queen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hb api.Heartbeat
		if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
			t.Error(err)
		}
		mu.Lock()
		sessions, seqs = append(sessions, hb.SessionID), append(seqs, hb.Seq)
		first := len(sessions) == 1
		mu.Unlock()
		if first {
			w.Write([]byte(`{"ignored":true}`))
			return
		}
		w.Write([]byte(`{"ignored":false,"dropped":[{"id":"llm-1","reason":"cpu_pct -1 outside [0, 220]"}]}`))
	}))
	defer queen.Close()
	var log syncBuf
	s := newSender(senderConfig{QueenURL: queen.URL, Interval: time.Second, Log: slog.New(slog.NewTextHandler(&log, nil)),
		Build: func() (api.Heartbeat, []api.Worker) { return api.Heartbeat{HiveID: "h"}, nil }})
	if err := s.send(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sessions) != 2 || sessions[0] == sessions[1] || seqs[1] != 1 {
		t.Fatalf("sessions %v seqs %v, want a second heartbeat in a new session starting at 1", sessions, seqs)
	}
	if cur := s.info().SessionID; cur != sessions[1] {
		t.Fatalf("sender session %s, want the new %s", cur, sessions[1])
	}
	if out := log.String(); !strings.Contains(out, "new session") || !strings.Contains(out, "llm-1") || !strings.Contains(out, "cpu_pct -1") {
		t.Fatalf("log:\n%s", out)
	}
}

// A host whose workers hold more pids than a heartbeat may carry still
// reports every worker: each list is cut to its share, with the reason on
// the record, and the published snapshot it came from is left whole.
func TestClipPIDs(t *testing.T) {
	pids := func(n int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = i + 1
		}
		return p
	}
	small := []api.Worker{{ID: "llm-a", PIDs: pids(10)}, {ID: "llm-b", PIDs: pids(20)}}
	if got := clipPIDs(small); &got[0] != &small[0] {
		t.Fatal("lists within the bound were copied")
	}
	ws := []api.Worker{{ID: "llm-a", PIDs: pids(api.MaxHeartbeatPIDs)}, {ID: "llm-b", PIDs: pids(5)}, {ID: "llm-c", PIDs: pids(api.MaxHeartbeatPIDs / 2)}}
	got := clipPIDs(ws)
	total := 0
	for _, w := range got {
		total += len(w.PIDs)
	}
	each := api.MaxHeartbeatPIDs / 3
	switch {
	case len(got) != 3 || total > api.MaxHeartbeatPIDs:
		t.Fatalf("%d workers, %d pids; want 3 and at most %d", len(got), total, api.MaxHeartbeatPIDs)
	case len(got[0].PIDs) != each || len(got[1].PIDs) != 5 || len(got[2].PIDs) != each:
		t.Fatalf("lists of %d, %d, %d pids; want %d, 5, %d", len(got[0].PIDs), len(got[1].PIDs), len(got[2].PIDs), each, each)
	case len(got[0].Errors) != 1 || !strings.Contains(got[0].Errors[0], "cut") || len(got[1].Errors) != 0:
		t.Fatalf("errors %q, %q", got[0].Errors, got[1].Errors)
	case len(ws[0].PIDs) != api.MaxHeartbeatPIDs || len(ws[0].Errors) != 0:
		t.Fatal("the snapshot's own worker was changed")
	}
}

// A CPU limit above the host's cores is refused with what a bare number
// means: "50" on a 2-core host is 50 cores, not 50 %.
func TestCheckCPULimit(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{{"", true}, {"50%", true}, {"2", true}, {"200%", true}, {"2.5", false}, {"50", false}, {"nonsense", true}} {
		err := checkCPULimit(tc.v, 2)
		if (err == nil) != tc.ok || err != nil && (api.HTTPStatus(err) != 400 || !strings.Contains(err.Error(), "this host has 2")) {
			t.Errorf("checkCPULimit(%q, 2) = %v, want ok %v", tc.v, err, tc.ok)
		}
	}
}

// A poke (a spawn, an exit) sends at once after the interval's own
// heartbeat, and waits pokeGap only after another poked one: pokes that
// come faster share heartbeats, and an exit just after a periodic
// heartbeat is not held back.
func TestSenderPokeGap(t *testing.T) {
	arrived := make(chan time.Time, 10)
	queen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- time.Now()
		w.Write([]byte(`{"ignored":false}`))
	}))
	defer queen.Close()
	s := newSender(senderConfig{QueenURL: queen.URL, Interval: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Build: func() (api.Heartbeat, []api.Worker) { return api.Heartbeat{HiveID: "h"}, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	defer func() { cancel(); <-done }()
	<-arrived // the first, periodic heartbeat
	t1 := time.Now()
	s.Poke()
	d1 := (<-arrived).Sub(t1)
	t2 := time.Now()
	s.Poke()
	d2 := (<-arrived).Sub(t2)
	if d2 < pokeGap-5*time.Millisecond {
		t.Fatalf("a poke %v after a poked heartbeat was sent after %v, want it held to pokeGap (%v)", d1, d2, pokeGap)
	}
	if d1 >= d2 {
		t.Fatalf("a poke right after the periodic heartbeat was sent after %v, no sooner than one after a poked heartbeat (%v)", d1, d2)
	}
}
