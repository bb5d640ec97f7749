package gpu

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
