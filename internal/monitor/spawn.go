package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/limits"
	"github.com/rbee-dev/rbee/internal/telemetry"
)

// Spec describes a worker to spawn, as the hive API receives it.
type Spec struct {
	Group    string            `json:"group"`
	Instance string            `json:"instance"`
	Binary   string            `json:"binary"`
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	// CPULimit is percent of one core ("250%") or cores ("2.5"); "" = none.
	CPULimit string `json:"cpu_limit"`
	// MemoryLimit is bytes, optionally with K/M/G/Ki/Mi/Gi; "" = none.
	MemoryLimit string `json:"memory_limit"`
	// Dir is the working directory; "" means the hive's.
	Dir string `json:"dir,omitempty"`
}

// Bounds on a spec, so no request can make the hive hold unbounded data.
const (
	maxArgs   = 256
	maxEnv    = 256
	maxStrLen = 4096
)

// ID returns the worker's stable id, "<group>-<instance>".
func (s Spec) ID() string { return s.Group + "-" + s.Instance }

// Validate checks the spec without touching the system and returns the
// parsed limits. Errors wrap ErrSpec or are *limits.Error.
func (s Spec) Validate() (cgroups.Limits, error) {
	var lim cgroups.Limits
	if err := cgroups.ValidName(s.Group); err != nil {
		return lim, fmt.Errorf("%w: group %q: %v", ErrSpec, s.Group, err)
	}
	if err := cgroups.ValidName(s.Instance); err != nil {
		return lim, fmt.Errorf("%w: instance %q: %v", ErrSpec, s.Instance, err)
	}
	if s.Binary == "" {
		return lim, fmt.Errorf("%w: binary is required", ErrSpec)
	}
	if !filepath.IsAbs(s.Binary) {
		return lim, fmt.Errorf("%w: binary %q must be an absolute path", ErrSpec, s.Binary)
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
	for k, v := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) || len(k)+len(v) > maxStrLen {
			return lim, fmt.Errorf("%w: env %q: names must be non-empty without '=' or NUL, values without NUL", ErrSpec, clipStr(k))
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

// checkBinary fails unless path is an executable regular file.
func checkBinary(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBinary, path, errors.Unwrap(err))
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrBinary, path)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: %s is not executable", ErrBinary, path)
	}
	return nil
}

// Spawn starts a worker. Nothing is left behind when it fails: no cgroup,
// no process, no record.
func (m *Monitor) Spawn(ctx context.Context, spec Spec) (telemetry.Worker, error) {
	lim, err := spec.Validate()
	if err != nil {
		return telemetry.Worker{}, err
	}
	exe, err := m.allowed(spec.Binary)
	if err != nil {
		return telemetry.Worker{}, err
	}
	if err := checkBinary(exe); err != nil {
		return telemetry.Worker{}, err
	}
	id := spec.ID()
	if err := m.reserve(id); err != nil {
		return telemetry.Worker{}, err
	}
	defer m.release(id)

	w := &worker{
		id: id, group: spec.Group, instance: spec.Instance,
		binary: spec.Binary, args: append([]string(nil), spec.Args...),
		model: ModelFromArgs(spec.Args), state: telemetry.StateStarting,
		done: make(chan struct{}),
	}
	cmd := &exec.Cmd{
		Path: exe,
		Args: append([]string{spec.Binary}, spec.Args...),
		Env:  workerEnv(spec.Env),
		Dir:  spec.Dir,
	}
	// A worker outlives a hive restart: its own session keeps a Ctrl-C in
	// the hive's terminal from reaching it.
	cmd.SysProcAttr = workerSysProcAttr()
	if m.cfg.LogDir != "" {
		f, err := os.OpenFile(filepath.Join(m.cfg.LogDir, id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return telemetry.Worker{}, fmt.Errorf("open worker log: %w", err)
		}
		w.logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	fail := func(err error) (telemetry.Worker, error) {
		if w.cg != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if derr := w.cg.Delete(dctx); derr != nil {
				m.log.Error("remove cgroup after failed spawn", "worker", id, "err", derr)
			}
		}
		if w.logFile != nil {
			w.logFile.Close()
		}
		return telemetry.Worker{}, err
	}

	if cg := m.cfg.Platform.Cgroups; cg != nil {
		g, err := cg.Create(spec.Group+"/"+spec.Instance, lim)
		if err != nil {
			if errors.Is(err, cgroups.ErrExists) {
				return fail(fmt.Errorf("%w: %s (its cgroup holds processes no hive watches; run adopt or remove them)", ErrExists, id))
			}
			return fail(fmt.Errorf("create cgroup for %s: %w", id, err))
		}
		w.cg, w.limits = g, lim
		err = g.Start(cmd)
		if err != nil {
			return fail(err)
		}
	} else if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start %s: %w", spec.Binary, err))
	}
	w.cmd, w.pid = cmd, cmd.Process.Pid
	w.startedAt = m.processStart(w.pid)

	m.mu.Lock()
	m.workers[id] = w
	rec := w.baseLocked(m.now())
	m.mu.Unlock()
	go m.waitChild(w)

	m.log.Info("worker spawned", "worker", id, "pid", w.pid, "binary", spec.Binary,
		"cgroup", rec.Cgroup, "cpu_limit", spec.CPULimit, "memory_limit", spec.MemoryLimit)
	m.changed()
	return rec, nil
}

// allowed enforces Config.BinDir and returns the path to execute: the
// binary itself, or its resolved path when a bin dir is set.
func (m *Monitor) allowed(bin string) (string, error) {
	if m.cfg.BinDir == "" {
		return bin, nil
	}
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return "", fmt.Errorf("%w: binary %s: %v", ErrForbidden, bin, errors.Unwrap(err))
	}
	if rel, err := filepath.Rel(m.cfg.BinDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: binary %s (resolves to %s) is outside --worker-bin-dir %s", ErrForbidden, bin, real, m.cfg.BinDir)
	}
	return real, nil
}

// reserve claims id for a spawn: it fails if a live worker has it or
// another spawn of it is under way. An exited worker's record is replaced.
func (m *Monitor) reserve(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.spawning[id] {
		return fmt.Errorf("%w: %s is being spawned", ErrExists, id)
	}
	if w, ok := m.workers[id]; ok && w.state != telemetry.StateExited {
		return fmt.Errorf("%w: %s (pid %d)", ErrExists, id, w.pid)
	}
	m.spawning[id] = true
	return nil
}

func (m *Monitor) release(id string) {
	m.mu.Lock()
	delete(m.spawning, id)
	m.mu.Unlock()
}

// processStart returns when pid started, from procfs where there is one.
func (m *Monitor) processStart(pid int) time.Time {
	if p := m.cfg.Platform.Proc; p != nil {
		if t, err := p.StartedAt(pid, m.tick, m.now()); err == nil {
			return t
		}
	}
	return m.now()
}

func clipStr(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
