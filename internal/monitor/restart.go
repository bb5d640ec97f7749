package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// restartSpec is a validated restart policy.
type restartSpec struct {
	policy              string
	max                 int
	window              time.Duration
	backoff, maxBackoff time.Duration
}

func parseRestart(r *api.RestartPolicy) (*restartSpec, error) {
	if r == nil || r.Policy == "" || r.Policy == api.RestartNever {
		return nil, nil
	}
	switch r.Policy {
	case api.RestartOnFailure, api.RestartAlways:
	default:
		return nil, fmt.Errorf("%w: restart.policy %q: want never, on-failure or always", ErrSpec, r.Policy)
	}
	rs := &restartSpec{policy: r.Policy, max: r.MaxRestarts, window: time.Duration(r.Window),
		backoff: time.Duration(r.Backoff), maxBackoff: time.Duration(r.MaxBackoff)}
	if rs.max == 0 {
		rs.max = 5
	}
	if rs.window == 0 {
		rs.window = 10 * time.Minute
	}
	if rs.backoff == 0 {
		rs.backoff = time.Second
	}
	if rs.maxBackoff == 0 {
		rs.maxBackoff = max(time.Minute, rs.backoff)
	}
	switch {
	case rs.max < 1 || rs.max > 1000:
		return nil, fmt.Errorf("%w: restart.max_restarts %d: want 1 to 1000", ErrSpec, rs.max)
	case rs.window < time.Second || rs.window > 7*24*time.Hour:
		return nil, fmt.Errorf("%w: restart.window %v: want 1s to 168h", ErrSpec, rs.window)
	case rs.backoff < 10*time.Millisecond || rs.backoff > time.Hour:
		return nil, fmt.Errorf("%w: restart.backoff %v: want 10ms to 1h", ErrSpec, rs.backoff)
	case rs.maxBackoff < rs.backoff || rs.maxBackoff > 24*time.Hour:
		return nil, fmt.Errorf("%w: restart.max_backoff %v: want from the backoff (%v) to 24h", ErrSpec, rs.maxBackoff, rs.backoff)
	}
	return rs, nil
}

// runs is what a worker's runs share across restarts. Guarded by
// Monitor.mu.
type runs struct {
	restarts int
	times    []time.Time // of the restarts within the window
	lastExit *api.WorkerExit
	pending  bool   // a restart is scheduled
	err      string // why there will be no restart
}

// failed reports whether an exit is a failure: a non-zero code, a signal
// (an OOM kill included).
func failed(code *int, sig *string, oom *bool) bool {
	return code == nil || *code != 0 || sig != nil || oom != nil && *oom
}

// planRestartLocked decides, as a worker's exit is recorded, whether and
// when it runs again; it returns the delay, or false. A stop request or a
// hive shutdown is never a reason. Caller holds Monitor.mu.
func (m *Monitor) planRestartLocked(w *worker, now time.Time) (time.Duration, bool) {
	rs := w.restart
	if rs == nil || w.stopping {
		return 0, false
	}
	select {
	case <-m.closed:
		return 0, false
	default:
	}
	if rs.policy == api.RestartOnFailure && !failed(w.exitCode, w.signal, w.oom) {
		return 0, false
	}
	h := w.runs
	kept := h.times[:0]
	for _, t := range h.times {
		if now.Sub(t) < rs.window {
			kept = append(kept, t)
		}
	}
	h.times = kept
	if len(h.times) >= rs.max {
		h.err = fmt.Sprintf("not restarted: %d restarts within %v (restart.max_restarts)", len(h.times), rs.window)
		return 0, false
	}
	delay := rs.backoff << min(len(h.times), 30)
	if delay > rs.maxBackoff || delay <= 0 {
		delay = rs.maxBackoff
	}
	h.pending = true
	return delay, true
}

// restartLater starts w's spec again after delay, with the same id,
// cgroup path and limits, unless it is stopped or the monitor closes
// first.
func (m *Monitor) restartLater(w *worker, delay time.Duration) {
	defer m.wg.Done()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-m.closed:
		m.mu.Lock()
		w.runs.pending = false
		m.mu.Unlock()
		m.dropSpec(w.id, w.pid)
		return
	}
	m.mu.Lock()
	if w.stopping || m.workers[w.id] != w {
		w.runs.pending = false
		m.mu.Unlock()
		m.dropSpec(w.id, w.pid)
		return
	}
	h := w.runs
	h.restarts++
	h.times = append(h.times, m.now())
	h.lastExit = &api.WorkerExit{ExitCode: w.exitCode, Signal: w.signal, OOMKilled: w.oom, ExitedAt: api.Ptr(w.exitedAt)}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.spawn(ctx, w.spec, h); err != nil {
		m.log.Error("restart worker", "worker", w.id, "err", err)
		m.mu.Lock()
		h.pending, h.err = false, "restart failed: "+err.Error()
		m.mu.Unlock()
		m.dropSpec(w.id, w.pid)
		m.changed()
		return
	}
	m.log.Info("worker restarted", "worker", w.id, "restarts", h.restarts)
}
