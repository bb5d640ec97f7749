package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/ids"
)

// Adopt walks the cgroup tree under the parent and takes over every worker
// cgroup that still holds processes (left by an earlier hive process), and
// removes the ones that are empty. It returns the ids it adopted.
func (m *Monitor) Adopt(ctx context.Context) ([]string, error) {
	cgm := m.cfg.Platform.Cgroups
	if cgm == nil {
		m.pruneSpecs(nil) // no worker can be adopted here
		return nil, nil
	}
	rels, err := cgm.List()
	if err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	var adopted []string
	var errs []error
	// A worker whose cgroup is there keeps its request, even if adopting
	// it failed this time.
	keep := map[string]bool{}
	for _, rel := range rels {
		group, instance, _ := strings.Cut(rel, "/")
		keep[ids.WorkerID(group, instance)] = true
	}
	for _, rel := range rels {
		group, instance, _ := strings.Cut(rel, "/")
		id := ids.WorkerID(group, instance)
		m.mu.Lock()
		_, known := m.workers[id]
		m.mu.Unlock()
		if known {
			continue
		}
		g, err := cgm.Open(rel)
		if err == nil {
			var w *worker
			if w, err = m.adoptOne(ctx, g, group, instance); w != nil {
				adopted = append(adopted, id)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("adopt %s: %w", rel, err))
		}
	}
	// Workers an earlier hive placed elsewhere (its tree was another):
	// their kept requests say where.
	if op, ok := cgm.(cgroups.PathOpener); ok {
		for id, path := range m.keptElsewhere(keep) {
			g, err := op.OpenPath(path)
			if err != nil {
				continue // gone with its worker: the request is pruned
			}
			group, instance := filepath.Base(filepath.Dir(path)), filepath.Base(path)
			if ids.WorkerID(group, instance) != id {
				g.Close()
				continue
			}
			keep[id] = true
			w, err := m.adoptOne(ctx, g, group, instance)
			if err != nil {
				errs = append(errs, fmt.Errorf("adopt %s from %s: %w", id, path, err))
			} else if w != nil {
				adopted = append(adopted, id)
			}
		}
	}
	m.pruneSpecs(keep)
	if len(adopted) > 0 {
		m.changed()
	}
	return adopted, errors.Join(errs...)
}

func (m *Monitor) adoptOne(ctx context.Context, g cgroups.Group, group, instance string) (*worker, error) {
	s, err := g.Sample()
	if err != nil {
		g.Close()
		return nil, err
	}
	if len(s.PIDs) == 0 {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m.log.Info("removing empty worker cgroup", "cgroup", g.Path())
		return nil, g.Delete(dctx)
	}
	pid := m.mainPid(s.PIDs)
	lim, err := g.Limits()
	if err != nil {
		m.log.Warn("read limits of adopted worker", "cgroup", g.Path(), "err", err)
	}
	oomBase, _, _ := g.OOMKills()
	// On Linux FindProcess holds a pidfd: signals cannot reach a process
	// that reused the pid.
	proc, err := os.FindProcess(pid)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("adopt pid %d: %w", pid, err)
	}
	w := &worker{proc: proc,
		id: ids.WorkerID(group, instance), group: group, instance: instance,
		pid: pid, cg: g, limits: lim, oomBase: oomBase,
		state: api.StateReady, done: make(chan struct{}),
	}
	w.startedAt, w.startTicks = m.processStart(pid)
	if p := m.cfg.Platform.Proc; p != nil {
		if args, err := p.Cmdline(pid); err == nil && len(args) > 0 {
			args = clipArgs(args)
			w.binary, w.args = args[0], args[1:]
			if m := ModelFromArgs(w.args); m != nil {
				w.model = api.Ptr(ids.Clean(*m, api.MaxModelLen))
			}
		}
	}
	spec, parsed, err := m.loadSpec(w.id, pid, w.startTicks)
	if err != nil {
		m.log.Warn("adopted worker's kept spawn request is unusable: no health check or restart policy", "worker", w.id, "err", err)
	}
	if spec != nil {
		// The hive that spawned it kept its request: the worker goes on
		// as it was asked to run. Its health is not known (it may have
		// been loading, or failing, when that hive left): it is starting
		// until its first check, which runs at once. Restarts count
		// afresh.
		w.setSpec(*spec, parsed)
		w.runs = &runs{}
		w.binary, w.args, w.model = spec.Binary, append([]string(nil), spec.Args...), ModelFromArgs(spec.Args)
	}
	m.mu.Lock()
	m.workers[w.id] = w
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if waitExit(pid, m.closed) {
			// Not our child: its exit code went to its real parent.
			m.finish(w, nil, nil)
		}
	}()
	// Its output still goes to the log an earlier hive opened: keep
	// bounding it.
	m.watch(w, true)
	m.log.Info("worker adopted", "worker", w.id, "pid", pid, "cgroup", g.Path(),
		"health_check", w.health != nil, "restart", w.restart != nil, "spawn_request", spec != nil)
	return w, nil
}

// mainPid picks the worker's main process among the cgroup's: the one whose
// parent is outside the cgroup, the lowest such pid if several.
func (m *Monitor) mainPid(pids []int) int {
	sorted := slices.Sorted(slices.Values(pids))
	p := m.cfg.Platform.Proc
	if p == nil {
		return sorted[0]
	}
	for _, pid := range sorted {
		st, err := p.Stat(pid)
		if err == nil && !slices.Contains(pids, st.PPID) {
			return pid
		}
	}
	return sorted[0]
}

// clipArgs bounds a command line read from the host to what a heartbeat
// may carry: at most api.MaxWorkerArgs arguments (binary included)
// of at most api.MaxArgLen bytes of valid UTF-8 each. A worker that
// was not spawned through rbee must not get its hive's heartbeats refused.
func clipArgs(args []string) []string {
	if len(args) > api.MaxWorkerArgs+1 {
		args = args[:api.MaxWorkerArgs+1]
	}
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > api.MaxArgLen {
			a = a[:api.MaxArgLen]
		}
		out[i] = strings.ToValidUTF8(a, "\uFFFD")
		if len(out[i]) > api.MaxArgLen {
			out[i] = ids.Clean(out[i], api.MaxArgLen)
		}
	}
	return out
}
