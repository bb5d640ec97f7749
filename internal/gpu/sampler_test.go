package gpu

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// blockBackend blocks until released, ignoring ctx, like an NVML call
// stuck in the driver.
type blockBackend struct {
	release chan struct{}
	calls   atomic.Int32
}

func (b *blockBackend) Name() string { return "nvml" }
func (b *blockBackend) Close() error { return nil }
func (b *blockBackend) Query(ctx context.Context) (Snapshot, error) {
	b.calls.Add(1)
	<-b.release
	return Snapshot{Procs: []Process{{PID: 7}}}, nil
}

func TestSamplerDeadlineAndSingleFlight(t *testing.T) {
	b := &blockBackend{release: make(chan struct{})}
	s := NewSampler(b, 200*time.Millisecond)
	start := time.Now()
	_, err := s.Sample(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("Sample = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Fatalf("Sample took %v with a 200ms deadline", d)
	}
	// The stuck query is still the one in flight: the next pass fails at
	// once instead of waiting or starting a second query.
	start = time.Now()
	_, err = s.Sample(context.Background())
	if err == nil || !strings.Contains(err.Error(), "still running") || time.Since(start) > reapGrace+100*time.Millisecond {
		t.Fatalf("second Sample = %v after %v", err, time.Since(start))
	}
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("%d queries started, want 1 in flight", n)
	}
	close(b.release)
	// Once it returns, the next pass starts a fresh query that succeeds.
	deadline := time.Now().Add(2 * time.Second)
	for {
		snap, err := s.Sample(context.Background())
		if err == nil && len(snap.Procs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// Concurrent callers share one query.
func TestSamplerSharesQuery(t *testing.T) {
	b := &blockBackend{release: make(chan struct{})}
	s := NewSampler(b, 2*time.Second)
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := s.Sample(context.Background()); errs <- err }()
	}
	time.Sleep(50 * time.Millisecond) // let all four arrive while it blocks
	close(b.release)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("%d queries for 4 concurrent callers, want 1", n)
	}
}

// gateBackend answers each query when told to, with the pid it is given.
type gateBackend struct {
	answer chan int
	calls  atomic.Int32
}

func (b *gateBackend) Name() string { return "nvidia-smi" }
func (b *gateBackend) Close() error { return nil }
func (b *gateBackend) Query(ctx context.Context) (Snapshot, error) {
	b.calls.Add(1)
	select {
	case pid := <-b.answer:
		return Snapshot{Devices: []api.GPU{{Index: 0, UUID: "GPU-x"}}, Procs: []Process{{PID: pid}}}, nil
	case <-ctx.Done():
		return Snapshot{}, ctx.Err()
	}
}

// Run queries on its own clock and Last never waits for it: while a
// query is held, Last answers with the previous sample and when that
// one started; once Run stops, the newest sample grows stale and Last
// says so instead of showing it as fresh.
func TestSamplerRunAndLast(t *testing.T) {
	b := &gateBackend{answer: make(chan int)}
	s := NewSampler(b, time.Second)
	if _, at, err := s.Last(); err != nil || !at.IsZero() {
		t.Fatalf("Last before any query: at %v err %v, want zero and no error", at, err)
	}
	before := time.Now()
	go func() { b.answer <- 1 }()
	if _, err := s.Sample(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, 20*time.Millisecond); close(done) }()
	// Run's next query is held by the gate: Last answers meanwhile, from
	// the first sample.
	for b.calls.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	snap, at, err := s.Last()
	if err != nil || len(snap.Procs) != 1 || snap.Procs[0].PID != 1 || at.Before(before) || at.After(time.Now()) {
		t.Fatalf("Last while a query is held: %+v at %v err %v, want the first sample", snap, at, err)
	}
	b.answer <- 2
	for {
		if snap, at2, err := s.Last(); err == nil && snap.Procs[0].PID == 2 {
			if !at2.After(at) {
				t.Fatalf("the second sample started at %v, not after the first (%v)", at2, at)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	// 2 × 20 ms + the 1 s deadline pass with no sample: stale.
	time.Sleep(2*20*time.Millisecond + time.Second + 50*time.Millisecond)
	snap, _, err = s.Last()
	if err == nil || !strings.Contains(err.Error(), "the newest sample is") || len(snap.Devices) != 1 || snap.Procs != nil {
		t.Fatalf("Last after Run stopped: %+v %v, want a stale error and the device without readings", snap, err)
	}
}
