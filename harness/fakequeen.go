package harness

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/httpx"
	"github.com/rbee-dev/rbee/internal/registry"
)

// QueenMode is how a FakeQueen answers heartbeats.
type QueenMode int

// FakeQueen modes.
const (
	QueenOK    QueenMode = iota // 200, heartbeat recorded
	QueenError                  // 500, not recorded
	QueenHang                   // never answers (until the mode changes or the client gives up)
	QueenSlow                   // answers 200 after Delay
)

// Received is one heartbeat a FakeQueen accepted.
type Received struct {
	At time.Time
	HB api.Heartbeat
}

// FakeQueen is a stand-in queen-rbee for hive tests: it records the
// heartbeats it accepts and can be made slow, failing, hanging or down.
type FakeQueen struct {
	t    TB
	Addr string
	URL  string

	mu       sync.Mutex
	mode     QueenMode
	delay    time.Duration
	got      []Received
	attempts int
	srv      *http.Server
	changed  chan struct{}
}

// StartFakeQueen listens on a free loopback port.
func StartFakeQueen(t TB) *FakeQueen {
	t.Helper()
	q := &FakeQueen{t: t, changed: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	q.Addr, q.URL = ln.Addr().String(), "http://"+ln.Addr().String()
	q.serve(ln)
	t.Cleanup(q.Down)
	return q
}

func (q *FakeQueen) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(q.handle)}
	q.mu.Lock()
	q.srv = srv
	q.mu.Unlock()
	go srv.Serve(ln)
}

func (q *FakeQueen) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/hive-heartbeat" {
		http.NotFound(w, r)
		return
	}
	q.mu.Lock()
	q.attempts++
	mode, delay, changed := q.mode, q.delay, q.changed
	q.mu.Unlock()
	switch mode {
	case QueenError:
		http.Error(w, `{"error":"fake queen: failing on purpose"}`, http.StatusInternalServerError)
		return
	case QueenHang:
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	case QueenSlow:
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	// The real queen's decoder and validation: a hive whose heartbeats
	// the queen would refuse fails against the fake too.
	var hb api.Heartbeat
	if err := httpx.DecodeFast(w, r, api.MaxHeartbeatBody, &hb); err != nil {
		httpx.Error(w, err)
		return
	}
	rep, err := registry.Sanitize(&hb, time.Now())
	if err == nil && len(rep.Dropped) > 0 {
		err = api.Errorf(api.ErrInvalid, "worker entries the queen would drop: %+v", rep.Dropped)
	}
	if err != nil {
		httpx.Error(w, err)
		return
	}
	q.mu.Lock()
	q.got = append(q.got, Received{At: time.Now(), HB: hb})
	q.mu.Unlock()
	w.Write([]byte(`{"ignored":false}`))
}

// Set changes how heartbeats are answered; delay applies to QueenSlow.
func (q *FakeQueen) Set(mode QueenMode, delay time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mode, q.delay = mode, delay
	close(q.changed) // release hung requests
	q.changed = make(chan struct{})
}

// Down closes the listener: connections are refused until Up.
func (q *FakeQueen) Down() {
	q.mu.Lock()
	srv := q.srv
	q.srv = nil
	q.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}
}

// Up listens again on the same address.
func (q *FakeQueen) Up() {
	q.t.Helper()
	var ln net.Listener
	err := Poll(5*time.Second, func() error {
		var err error
		ln, err = net.Listen("tcp", q.Addr)
		return err
	})
	if err != nil {
		q.t.Fatalf("fake queen up again on %s: %v", q.Addr, err)
	}
	q.serve(ln)
}

// Heartbeats returns the accepted heartbeats.
func (q *FakeQueen) Heartbeats() []Received {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Received(nil), q.got...)
}

// Attempts counts every heartbeat request, accepted or not.
func (q *FakeQueen) Attempts() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.attempts
}

// WaitHeartbeat waits for an accepted heartbeat after index from matching
// match, and returns it with its index.
func (q *FakeQueen) WaitHeartbeat(timeout time.Duration, from int, match func(api.Heartbeat) bool) (Received, int) {
	q.t.Helper()
	var got Received
	idx := -1
	err := Poll(timeout, func() error {
		hbs := q.Heartbeats()
		for i := from; i < len(hbs); i++ {
			if match == nil || match(hbs[i].HB) {
				got, idx = hbs[i], i
				return nil
			}
		}
		return errors.New("no matching heartbeat yet")
	})
	if err != nil {
		q.t.Fatalf("fake queen: %v after %v (%d accepted, %d attempts)", err, timeout, len(q.Heartbeats()), q.Attempts())
	}
	return got, idx
}
