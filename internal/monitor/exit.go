package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// cleanupTimeout bounds how long removing an exited worker's cgroup may
// take before the monitor gives up and logs it.
const cleanupTimeout = 30 * time.Second

// waitChild reaps a spawned worker: the hive is its parent, so the exit is
// known the moment it happens, with its code or signal.
func (m *Monitor) waitChild(w *worker) {
	err := w.cmd.Wait()
	var code *int
	var sig *string
	if ps := w.cmd.ProcessState; ps != nil {
		code, sig = exitStatus(ps)
	} else if err != nil {
		m.log.Error("wait for worker", "worker", w.id, "err", err)
	}
	m.finish(w, code, sig)
}

// finish records a worker's exit and tells the caller at once, then
// removes its cgroup (killing any process the worker left behind in it):
// the exit is news the moment it is known, and a cgroup that takes its
// time to go (on cgroup v1 tens of milliseconds after a kill) must not
// hold it back. A cleanup that fails is news again. The worker is done
// (Stop returns, its id may be spawned anew, a restart may begin) only
// once its cgroup is gone.
func (m *Monitor) finish(w *worker, code *int, sig *string) {
	var oom *bool
	if w.cg != nil {
		if n, exact, err := w.cg.OOMKills(); err == nil {
			// Without an exact counter, a hit limit only counts when the
			// worker died the way the OOM killer kills: SIGKILL.
			killed := n > w.oomBase && (exact || sig != nil && *sig == "SIGKILL")
			oom = &killed
		} else {
			m.log.Warn("read OOM state", "worker", w.id, "err", err)
		}
	}
	var tail string
	if m.cfg.Logs != nil {
		tail = tailOf(logFiles{m.cfg.Logs, w.id}, m.logFiles, ExitTailBytes)
	}
	m.mu.Lock()
	w.state = api.StateExited
	w.exitCode, w.signal, w.oom = code, sig, oom
	w.stopped = w.stopping
	w.exitedAt = m.now()
	w.logTail = tail
	var delay time.Duration
	restart := false
	if w.runs != nil {
		if delay, restart = m.planRestartLocked(w, w.exitedAt); restart {
			m.wg.Add(1)
		}
	}
	m.mu.Unlock()
	m.log.Info("worker exited", "worker", w.id, "pid", w.pid,
		"exit_code", derefOr(code, -1), "signal", derefOr(sig, ""), "oom_killed", oom != nil && *oom)
	m.changed()

	if w.cg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		if err := w.cg.Delete(ctx); err != nil {
			m.log.Error("remove cgroup of exited worker", "worker", w.id, "err", err)
			m.mu.Lock()
			w.cleanupErr = fmt.Errorf("worker %s exited but its cgroup could not be emptied and removed: %w", w.id, err)
			m.mu.Unlock()
			defer m.changed()
		}
		cancel()
	} else if w.cmd != nil {
		// A plain worker's children share its process group.
		killGroup(w.pid)
	}
	// The log guard closes the file when it has seen the worker's end.
	// The pass owns the per-task descriptors; without this they would
	// stay open until a pass saw the exit, which StopAll never waits for.
	m.collectMu.Lock()
	w.closeTaskIO()
	m.collectMu.Unlock()
	if !restart {
		// Before done: whoever waits for this exit may spawn the id anew.
		m.dropSpec(w.id, w.pid)
	}
	close(w.done)
	if restart {
		m.log.Info("worker will restart", "worker", w.id, "in", delay)
		go m.restartLater(w, delay)
	}
}

// Stop stops a worker: SIGTERM to its main process, then after the grace
// period every process of its cgroup is killed at once and the main
// process through its pidfd, then its cgroup is removed. It succeeds only
// when nothing is left. The record stays, as exited with its exit status,
// until Forget, so the next heartbeat tells the queen how the worker
// ended. Stopping an exited worker returns its record.
func (m *Monitor) Stop(ctx context.Context, id string) (api.Worker, error) {
	m.mu.Lock()
	w, ok := m.workers[id]
	if ok {
		// Its exit is no failure, and a restart it awaits is off.
		w.stopping = true
		if w.runs != nil {
			w.runs.pending = false
		}
	}
	m.mu.Unlock()
	if !ok {
		return api.Worker{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if !w.exited() {
		if err := w.proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			m.log.Warn("SIGTERM worker", "worker", id, "err", err)
		}
		grace := time.NewTimer(m.cfg.StopGrace)
		defer grace.Stop()
		select {
		case <-w.done:
		case <-grace.C:
			m.log.Warn("worker ignored SIGTERM; killing it", "worker", id, "grace", m.cfg.StopGrace)
			m.kill(w)
		case <-ctx.Done():
			m.kill(w)
		}
		select {
		case <-w.done:
		case <-ctx.Done():
			return api.Worker{}, fmt.Errorf("stop %s: %w", id, ctx.Err())
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w.cleanupErr != nil {
		return w.baseLocked(m.now()), w.cleanupErr
	}
	return w.baseLocked(m.now()), nil
}

// kill kills every process of the worker: the whole cgroup at once, and
// the main process through its pidfd (in case it left the cgroup).
func (m *Monitor) kill(w *worker) {
	if err := w.proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.log.Warn("SIGKILL worker", "worker", w.id, "err", err)
	}
	if w.cg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.cg.Kill(ctx); err != nil {
			m.log.Warn("kill worker cgroup", "worker", w.id, "err", err)
		}
		return
	}
	killGroup(w.pid)
}

// Forget drops the record of an exited worker, so exited workers do not
// pile up; it reports whether a record was dropped.
func (m *Monitor) Forget(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.workers[id]
	// Not while its cgroup is still being removed: a spawn of the id
	// waits for that through the record.
	if !ok || w.state != api.StateExited || !w.exited() || w.runs != nil && w.runs.pending {
		return false
	}
	delete(m.workers, id)
	return true
}

// Remove drops the record of an exited worker at the user's asking, as
// docker rm does a stopped container's; a running worker is refused
// (ErrRunning), and so is one with a restart pending. An exit whose
// cleanup (its cgroup's removal) is still under way is waited for, up to
// ctx: the exit is news before its cleanup ends, so a user who saw it may
// ask at once.
func (m *Monitor) Remove(ctx context.Context, id string) error {
	for {
		if m.Forget(id) {
			return nil
		}
		m.mu.Lock()
		w, ok := m.workers[id]
		var state api.State
		var pending bool
		if ok {
			state, pending = w.state, w.runs != nil && w.runs.pending
		}
		m.mu.Unlock()
		switch {
		case !ok:
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		case state != api.StateExited:
			return fmt.Errorf("%w: %s is %s; stop it first", ErrRunning, id, state)
		case pending:
			return fmt.Errorf("%w: %s has a restart pending; stop it first", ErrRunning, id)
		}
		select {
		case <-w.done:
			// Cleaned up: Forget takes it now, unless it was restarted meanwhile.
		case <-ctx.Done():
			return fmt.Errorf("%w: %s has exited and its cleanup is still under way; retry", ErrRunning, id)
		}
	}
}

// Prune drops the records of every exited worker whose end is settled
// and returns their ids, sorted.
func (m *Monitor) Prune() []string {
	m.mu.Lock()
	ids := make([]string, 0, len(m.workers))
	for id, w := range m.workers {
		if w.state == api.StateExited {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	removed := ids[:0]
	for _, id := range ids {
		if m.Forget(id) {
			removed = append(removed, id)
		}
	}
	slices.Sort(removed)
	return removed
}

// StopAll stops every worker, for a hive run with --stop-workers-on-exit.
func (m *Monitor) StopAll(ctx context.Context) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.workers))
	for id := range m.workers {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	errs := make(chan error, len(ids))
	for _, id := range ids {
		go func() {
			// Exited workers need no stopping; Stop returns them at once.
			_, err := m.Stop(ctx, id)
			if errors.Is(err, ErrNotFound) {
				err = nil
			}
			errs <- err
		}()
	}
	var all []error
	for range ids {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
