package monitor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/launch"
	"github.com/rbee-dev/rbee/internal/limits"
)

// Bounds on a spec, so no request can make the hive hold unbounded data:
// the wire format's, which the queen holds heartbeats to.
const (
	maxArgs   = api.MaxWorkerArgs
	maxEnv    = 256
	maxStrLen = api.MaxArgLen
)

// Parsed is a spawn request checked and parsed by ValidateSpec: its
// cgroup limits, health check and restart policy, so that no caller
// parses them again.
type Parsed struct {
	Limits  cgroups.Limits
	health  *healthSpec
	restart *restartSpec
}

// ValidateSpec checks a spawn request without touching the system and
// returns it parsed. Errors wrap ErrSpec or are *limits.Error.
func ValidateSpec(s api.SpawnRequest) (Parsed, error) {
	var p Parsed
	lim, err := validateFields(s)
	if err != nil {
		return p, err
	}
	p.Limits = lim
	if p.health, err = parseHealth(s.Health); err != nil {
		return p, err
	}
	if p.restart, err = parseRestart(s.Restart); err != nil {
		return p, err
	}
	return p, nil
}

// validateFields checks the request's names, binary, directory, model,
// environment and limits, and returns the limits.
func validateFields(s api.SpawnRequest) (cgroups.Limits, error) {
	var lim cgroups.Limits
	if err := ids.ValidName(s.Group); err != nil {
		return lim, fmt.Errorf("%w: group %s: %v", ErrSpec, ids.Quote(s.Group), err)
	}
	if err := ids.ValidName(s.Instance); err != nil {
		return lim, fmt.Errorf("%w: instance %s: %v", ErrSpec, ids.Quote(s.Instance), err)
	}
	if s.Binary == "" {
		return lim, fmt.Errorf("%w: binary is required", ErrSpec)
	}
	if !filepath.IsAbs(s.Binary) {
		return lim, fmt.Errorf("%w: binary %s must be an absolute path", ErrSpec, ids.Quote(s.Binary))
	}
	if s.Dir != "" && !filepath.IsAbs(s.Dir) {
		return lim, fmt.Errorf("%w: dir %s must be an absolute path", ErrSpec, ids.Quote(s.Dir))
	}
	if len(s.Args) > maxArgs {
		return lim, fmt.Errorf("%w: %d args, at most %d", ErrSpec, len(s.Args), maxArgs)
	}
	if len(s.Env) > maxEnv {
		return lim, fmt.Errorf("%w: %d env entries, at most %d", ErrSpec, len(s.Env), maxEnv)
	}
	for _, a := range append([]string{s.Binary, s.Dir}, s.Args...) {
		if len(a) > maxStrLen || strings.ContainsRune(a, 0) {
			return lim, fmt.Errorf("%w: an argument is longer than %d bytes or holds a NUL byte", ErrSpec, maxStrLen)
		}
	}
	if m := ModelFromArgs(s.Args); m != nil {
		if err := ids.ValidText(*m, api.MaxModelLen); err != nil {
			return lim, fmt.Errorf("%w: model name %s: %v", ErrSpec, ids.Quote(*m), err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		v := s.Env[k]
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) || len(k)+len(v) > maxStrLen {
			return lim, fmt.Errorf("%w: env %s: names must be non-empty without '=' or NUL, values without NUL", ErrSpec, ids.Quote(k))
		}
		if why := launch.EnvAllowed(k); why != "" {
			return lim, fmt.Errorf("%w: env %s: %s", ErrSpec, ids.Quote(k), why)
		}
	}
	var err error
	if lim.CPU, err = limits.ParseCPU("cpu_limit", s.CPULimit); err != nil {
		return lim, err
	}
	if lim.MemoryBytes, err = limits.ParseMemory("memory_limit", s.MemoryLimit); err != nil {
		return lim, err
	}
	return lim, nil
}

// Spawn starts a worker. Nothing is left behind when it fails: no cgroup,
// no process, no record.
func (m *Monitor) Spawn(ctx context.Context, spec api.SpawnRequest) (api.Worker, error) {
	return m.spawn(ctx, spec, nil)
}

// spawn starts a worker; prev carries the runs of the same id before a
// restart (nil for a new worker). It prepares the worker (the request
// parsed, the binary opened, the id reserved, the log opened), places it
// (its cgroup made, its process started in it), and watches it.
func (m *Monitor) spawn(ctx context.Context, spec api.SpawnRequest, prev *runs) (api.Worker, error) {
	parsed, err := ValidateSpec(spec)
	if err != nil {
		return api.Worker{}, err
	}
	exe, err := launch.OpenBinary(spec.Binary, m.cfg.BinDir)
	if err != nil {
		return api.Worker{}, err
	}
	defer exe.Close()
	id := spec.ID()
	if err := m.reserve(id); err != nil {
		return api.Worker{}, err
	}
	defer m.release(id)
	if prev == nil {
		prev = &runs{}
	}
	w := &worker{
		id: id, group: spec.Group, instance: spec.Instance,
		binary: spec.Binary, args: append([]string(nil), spec.Args...),
		model: ModelFromArgs(spec.Args), state: api.StateStarting,
		done: make(chan struct{}), runs: prev,
	}
	w.setSpec(spec, parsed)
	if err := m.place(ctx, w, exe, parsed.Limits); err != nil {
		return api.Worker{}, err
	}
	m.mu.Lock()
	m.workers[id] = w
	w.runs.pending = false
	rec := w.baseLocked(m.now())
	m.mu.Unlock()
	m.saveSpec(w)
	go m.waitChild(w)
	m.watch(w, w.logFile != nil)
	if w.logFile != nil {
		// The worker holds its own copy of the descriptor.
		w.logFile.Close()
	}
	m.log.Info("worker spawned", "worker", id, "pid", w.pid, "binary", spec.Binary, "user", m.cfg.User.String(),
		"cgroup", rec.Cgroup, "cpu_limit", spec.CPULimit, "memory_limit", spec.MemoryLimit)
	m.changed()
	return rec, nil
}

// setSpec gives w the request it runs by, parsed: its health check and
// restart policy.
func (w *worker) setSpec(spec api.SpawnRequest, p Parsed) {
	w.spec, w.restart = spec, p.restart
	if p.health != nil {
		w.health = &workerHealth{spec: p.health, state: api.StateStarting}
	}
}

// place starts w's process: its log opened, its cgroup made with lim (when
// the hive has cgroups), the process cloned into it. Nothing is left
// behind when it fails.
func (m *Monitor) place(ctx context.Context, w *worker, exe *os.File, lim cgroups.Limits) error {
	lim.Pids = m.cfg.PidsMax
	ls := launch.Spec{
		Exe: exe, Argv: append([]string{w.spec.Binary}, w.spec.Args...),
		Env: workerEnv(w.spec.Env, m.cfg.User), Dir: w.spec.Dir, User: m.cfg.User,
	}
	if m.cfg.Logs != nil {
		lp := logFiles{m.cfg.Logs, w.id}
		if err := lp.startRun(m.logFiles); err != nil {
			return err
		}
		f, err := lp.create()
		if err != nil {
			return err
		}
		w.logFile = f
		ls.Stdout, ls.Stderr = f, f
	}
	fail := func(err error) error {
		if w.cg != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if derr := w.cg.Delete(dctx); derr != nil {
				m.log.Error("remove cgroup after failed spawn", "worker", w.id, "err", derr)
			}
		}
		if w.logFile != nil {
			w.logFile.Close()
		}
		return err
	}
	if cg := m.cfg.Platform.Cgroups; cg != nil {
		g, err := cg.Create(w.group+"/"+w.instance, lim)
		if err != nil {
			if errors.Is(err, cgroups.ErrExists) {
				return fail(fmt.Errorf("%w: %s (its cgroup holds processes no hive watches; run adopt or remove them)", ErrExists, w.id))
			}
			return fail(fmt.Errorf("create cgroup for %s: %w", w.id, err))
		}
		w.cg, w.limits = g, lim
		pl, err := g.Placement()
		if err != nil {
			return fail(err)
		}
		if pl.Dir != nil {
			defer pl.Dir.Close()
		}
		ls.CgroupFD, ls.JoinProcs = pl.Dir, pl.Procs
		if m.rootWorker() && pl.Mount != "" {
			ls.ReadOnly = []string{pl.Mount}
		}
	}
	cmd, err := launch.Start(ls)
	if err != nil {
		return fail(err)
	}
	w.cmd, w.proc, w.pid = cmd, cmd.Process, cmd.Process.Pid
	w.startedAt, w.startTicks = m.processStart(w.pid)
	return nil
}

// watch starts what follows a worker, spawned or adopted, until it exits:
// the bound on its log (when log is set and the hive keeps logs: the
// guard reads and truncates through a descriptor of its own, as the
// worker's is write-only) and its health checks. Its exit is watched by
// the caller, which alone knows how (the hive's child, or a pidfd).
func (m *Monitor) watch(w *worker, log bool) {
	if log && m.cfg.Logs != nil {
		lp := logFiles{m.cfg.Logs, w.id}
		if g, err := lp.d.Open(lp.current(), os.O_RDWR); err == nil {
			m.wg.Add(1)
			go m.guardLog(lp, g, w.done)
		} else if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("worker log will not be bounded", "worker", w.id, "err", err)
		}
	}
	if w.health != nil {
		m.wg.Add(1)
		go m.watchHealth(w)
	}
}

// rootWorker reports whether workers run as uid 0 (explicitly, or because
// the hive is root and no user is set).
func (m *Monitor) rootWorker() bool {
	if m.cfg.User != nil {
		return m.cfg.User.UID == 0
	}
	return os.Geteuid() == 0
}

// reserve claims id for a spawn: it fails if a live worker has it or
// another spawn of it is under way. An exited worker's record is
// replaced, once its cgroup (the new one's path) is gone: a spawn right
// after an exit waits for that, up to cleanupWait.
func (m *Monitor) reserve(id string) error {
	deadline := time.Now().Add(cleanupWait)
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if m.spawning[id] {
			return fmt.Errorf("%w: %s is being spawned", ErrExists, id)
		}
		w, ok := m.workers[id]
		if ok && w.state != api.StateExited {
			return fmt.Errorf("%w: %s (pid %d)", ErrExists, id, w.pid)
		}
		if !ok || w.exited() {
			m.spawning[id] = true
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w: %s exited and its cgroup is still being removed; retry", ErrExists, id)
		}
		m.mu.Unlock()
		t := time.NewTimer(left)
		select {
		case <-w.done:
		case <-t.C:
		}
		t.Stop()
		m.mu.Lock()
	}
}

// cleanupWait bounds how long a spawn waits for the cgroup of an exited
// worker of the same id to go.
const cleanupWait = 5 * time.Second

func (m *Monitor) release(id string) {
	m.mu.Lock()
	delete(m.spawning, id)
	m.mu.Unlock()
}

// processStart returns when pid started, from procfs where there is one,
// and its start in clock ticks after boot (0: unknown), which names the
// process exactly: no clock step changes it.
func (m *Monitor) processStart(pid int) (time.Time, uint64) {
	if p := m.cfg.Platform.Proc; p != nil {
		if t, ticks, err := p.StartedAt(pid, m.tick, m.now()); err == nil {
			return t, ticks
		}
	}
	return m.now(), 0
}
