package gpu

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// DefaultTimeout is the deadline of one GPU query.
const DefaultTimeout = 2 * time.Second

// Sampler runs backend queries: each with a deadline, at most one in
// flight. Run queries on a clock of its own, and readers take the newest
// result with Last without ever waiting, so no worker event waits for a
// GPU query, however slow the backend (nvidia-smi takes 70 ms on an H200
// host; a hung driver, its whole deadline). Sample runs one query and
// waits for it: a caller arriving while a query runs waits for that
// query's result, never past its deadline; a query that overruns its
// deadline by more than reapGrace (an NVML call cannot be interrupted)
// stays the one in flight, and callers get an error quickly until it
// returns.
type Sampler struct {
	backend Backend
	timeout time.Duration

	// observe, when set, hears of every query's duration and error.
	observe func(took time.Duration, err error)

	mu       sync.Mutex
	inflight *call
	last     Snapshot
	lastErr  error
	// lastAt is when the last query that ended had started: its
	// readings are no older.
	lastAt time.Time
	// interval is Run's, 0 before Run: a result older than staleAfter
	// is stale.
	interval time.Duration
	// known are the devices of the last query that succeeded, for Last
	// while queries fail.
	known []api.GPU
}

type call struct {
	started  time.Time
	deadline time.Time
	done     chan struct{}
	snap     Snapshot
	err      error
}

// NewSampler wraps backend; timeout 0 means DefaultTimeout.
func NewSampler(backend Backend, timeout time.Duration) *Sampler {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Sampler{backend: backend, timeout: timeout}
}

// Observe makes every query's duration and error (nil on success) go to
// f, from the goroutine that ran it; call it before the first Sample.
func (s *Sampler) Observe(f func(took time.Duration, err error)) { s.observe = f }

// FailureReason classifies a query's error for counting: timeout, stuck
// (an earlier query has not returned), bad_output, or error.
func FailureReason(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "still running"):
		return "stuck"
	case strings.Contains(msg, "timed out"):
		return "timeout"
	case strings.Contains(msg, "unexpected output"), strings.Contains(msg, "output larger"), strings.Contains(msg, "unknown GPU"):
		return "bad_output"
	}
	return "error"
}

// Backend returns the backend's name.
func (s *Sampler) Backend() string { return s.backend.Name() }

// reapGrace is how long a pass waits for a query past its deadline to
// finish (a killed nvidia-smi still has to be reaped) before giving up on
// it as stuck.
const reapGrace = 250 * time.Millisecond

// Sample returns a fresh snapshot, or an error saying why there is none.
func (s *Sampler) Sample(ctx context.Context) (Snapshot, error) {
	s.mu.Lock()
	c := s.inflight
	s.mu.Unlock()
	if c != nil && !time.Now().Before(c.deadline) {
		// The query in flight is past its deadline: let it be reaped, then
		// start afresh; if it will not end, it is stuck (an NVML call
		// cannot be interrupted) and stays the only one in flight.
		select {
		case <-c.done:
		case <-time.After(reapGrace):
			err := fmt.Errorf("%s query still running after %s (timeout %s)", s.backend.Name(), roundDur(time.Since(c.started)), s.timeout)
			if s.observe != nil {
				s.observe(0, err)
			}
			return Snapshot{}, err
		case <-ctx.Done():
			return Snapshot{}, fmt.Errorf("%s: %w", s.backend.Name(), ctx.Err())
		}
	}
	s.mu.Lock()
	c = s.inflight
	if c == nil {
		now := time.Now()
		c = &call{started: now, deadline: now.Add(s.timeout), done: make(chan struct{})}
		s.inflight = c
		go s.run(c)
	}
	s.mu.Unlock()

	t := time.NewTimer(time.Until(c.deadline))
	defer t.Stop()
	select {
	case <-c.done:
		return c.snap, c.err
	case <-t.C:
		return Snapshot{}, fmt.Errorf("%s timed out after %s", s.backend.Name(), s.timeout)
	case <-ctx.Done():
		return Snapshot{}, fmt.Errorf("%s: %w", s.backend.Name(), ctx.Err())
	}
}

// Run queries the backend every interval until ctx ends, for Last; the
// first query comes an interval from now (Sample before Run for one at
// once). A query slower than the interval delays the next one (one is in
// flight at most); one that hangs ends at its deadline, and its error is
// the newest result until a query succeeds.
func (s *Sampler) Run(ctx context.Context, interval time.Duration) {
	s.mu.Lock()
	s.interval = interval
	s.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _ = s.Sample(ctx)
	}
}

// staleAfter is how old the newest result may be while Run runs: a
// query a tick, each within its deadline, leaves none older than an
// interval plus the deadline; twice the interval is slack for a loaded
// host.
func (s *Sampler) staleAfter() time.Duration { return 2*s.interval + s.timeout }

func (s *Sampler) run(c *call) {
	ctx, cancel := context.WithDeadline(context.Background(), c.deadline)
	defer cancel()
	c.snap, c.err = s.backend.Query(ctx)
	if c.err == nil && ctx.Err() != nil {
		c.err = fmt.Errorf("%s timed out after %s", s.backend.Name(), s.timeout)
	}
	s.mu.Lock()
	s.inflight = nil
	s.last, s.lastErr, s.lastAt = c.snap, c.err, c.started
	if c.err == nil {
		s.known = c.snap.Devices
	}
	s.mu.Unlock()
	if s.observe != nil {
		s.observe(time.Since(c.started), c.err)
	}
	close(c.done)
}

// Last returns the most recent query's result and when that query
// started (its readings are no older; zero before the first query ends),
// without waiting. When that query failed, or one is still running well
// past its deadline (a stuck NVML call: the last result is then old), or
// Run runs and the result is older than it should ever be, it returns
// the error together with the devices of the last query that succeeded,
// their identity and total memory kept and their readings null: a stale
// reading is said, not shown as fresh. A GPU that could not be read is not a GPU that is gone,
// any more than an idle one: listing none would make the host's GPU list
// flap with every failed query, and every consumer of the list with it
// (the queen announces each change of a hive's GPUs to stream clients).
func (s *Sampler) Last() (Snapshot, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.last, s.lastErr
	if c := s.inflight; err == nil && c != nil && time.Now().After(c.deadline.Add(reapGrace)) {
		err = fmt.Errorf("%s query still running after %s (timeout %s)", s.backend.Name(), roundDur(time.Since(c.started)), s.timeout)
	}
	if age := time.Since(s.lastAt); err == nil && s.interval > 0 && !s.lastAt.IsZero() && age > s.staleAfter() {
		err = fmt.Errorf("%s: the newest sample is %s old (sampled every %s)", s.backend.Name(), roundDur(age), s.interval)
	}
	if err != nil {
		snap = Snapshot{Devices: unread(s.known)}
	}
	return snap, s.lastAt, err
}

// unread returns devs with their identity and total memory only: what
// is known of them while they cannot be read.
func unread(devs []api.GPU) []api.GPU {
	if devs == nil {
		return nil
	}
	out := make([]api.GPU, len(devs))
	for i, d := range devs {
		out[i] = api.GPU{Index: d.Index, UUID: d.UUID, Name: d.Name, VRAMTotalBytes: d.VRAMTotalBytes}
	}
	return out
}

// Close waits for a query in flight (bounded by its deadline plus a
// second) and closes the backend.
func (s *Sampler) Close() error {
	s.mu.Lock()
	c := s.inflight
	s.mu.Unlock()
	if c != nil {
		select {
		case <-c.done:
		case <-time.After(time.Until(c.deadline) + time.Second):
		}
	}
	return s.backend.Close()
}

// Enabled reports whether the backend reads any GPU (not "none").
func (s *Sampler) Enabled() bool {
	_, none := s.backend.(None)
	return !none
}
