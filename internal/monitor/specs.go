package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/privdir"
)

// A worker's spawn request is kept in Config.SpecDir while it runs, so a
// hive that restarts and adopts it still knows its health check and
// restart policy (and its command line whole, not as /proc clips it).
// The file names the process it was written for (pid and start time in
// clock ticks since boot, which no clock step changes): a request is
// only applied to that process. The directory and its files must be the
// hive user's own and closed to others, as whoever writes a request
// there chooses what the hive runs when it restarts that worker.

// maxSpecFile bounds a kept request: a spawn body is at most 1 MiB.
const maxSpecFile = 4 << 20

// savedSpec is the file kept per worker: <SpecDir>/<id>.json, 0600 (the
// request's environment may hold secrets).
type savedSpec struct {
	Spec       api.SpawnRequest `json:"spec"`
	PID        int              `json:"pid"`
	StartTicks uint64           `json:"start_ticks,omitempty"`
	// Cgroup is the worker's cgroup, absolute below the mount root (on
	// v1, in the memory controller): a hive restarted with its tree
	// elsewhere still finds the worker.
	Cgroup string `json:"cgroup,omitempty"`
}

func (m *Monitor) specPath(id string) string {
	return filepath.Join(m.cfg.SpecDir, specName(id))
}

func specName(id string) string { return id + ".json" }

// keepsSpecs reports whether requests are kept: only where workers can be
// adopted, which takes cgroups.
func (m *Monitor) keepsSpecs() bool {
	return m.cfg.SpecDir != "" && m.cfg.Platform.Cgroups != nil
}

// saveSpec writes w's request for its current process. A failure costs
// only what a restarted hive will know of the worker, so it is logged.
func (m *Monitor) saveSpec(w *worker) {
	if !m.keepsSpecs() {
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	saved := savedSpec{Spec: w.spec, PID: w.pid, StartTicks: w.startTicks}
	if w.cg != nil {
		saved.Cgroup = w.cg.Path()
	}
	err := enc.Encode(saved)
	m.specMu.Lock()
	defer m.specMu.Unlock()
	var d *privdir.Dir
	if err == nil {
		d, err = m.specDirLocked(true)
	}
	if err == nil {
		err = d.WriteFile(specName(w.id), buf.Bytes(), 0o600)
		d.Close()
	}
	if err != nil {
		m.log.Warn("keep the worker's spawn request for a restarted hive", "worker", w.id, "err", err)
	}
}

// dropSpec removes the request kept for id's process pid (any, when pid
// is 0): that run is over for good. A request a later run of the same id
// wrote meanwhile stays.
func (m *Monitor) dropSpec(id string, pid int) {
	if !m.keepsSpecs() {
		return
	}
	m.specMu.Lock()
	defer m.specMu.Unlock()
	if pid != 0 {
		if s, err := m.readSpec(id); err == nil && s.PID != pid {
			return
		}
	}
	d, err := m.specDirLocked(false)
	if err == nil {
		err = d.Remove(specName(id))
		d.Close()
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("remove the worker's kept spawn request", "worker", id, "err", err)
	}
}

// loadSpec returns the request kept for id, parsed, when it was written
// for the process pid, started at tick ticks after boot (0: unknown).
func (m *Monitor) loadSpec(id string, pid int, ticks uint64) (*api.SpawnRequest, Parsed, error) {
	if !m.keepsSpecs() {
		return nil, Parsed{}, nil
	}
	m.specMu.Lock()
	defer m.specMu.Unlock()
	s, err := m.readSpec(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Parsed{}, nil
	}
	if err != nil {
		return nil, Parsed{}, err
	}
	switch {
	case s.Spec.ID() != id:
		return nil, Parsed{}, fmt.Errorf("%s: written for %s", m.specPath(id), s.Spec.ID())
	case s.PID != pid:
		return nil, Parsed{}, nil // written for an earlier run
	case s.StartTicks != 0 && ticks != 0 && s.StartTicks != ticks:
		return nil, Parsed{}, fmt.Errorf("%s: written for pid %d started at tick %d, not the process of that pid now (tick %d)", m.specPath(id), pid, s.StartTicks, ticks)
	}
	parsed, err := ValidateSpec(s.Spec)
	if err != nil {
		return nil, Parsed{}, fmt.Errorf("%s: %w", m.specPath(id), err)
	}
	return &s.Spec, parsed, nil
}

// readSpec reads id's kept request from a private directory. Caller
// holds specMu.
func (m *Monitor) readSpec(id string) (savedSpec, error) {
	var s savedSpec
	d, err := m.specDirLocked(false)
	if err != nil {
		return s, err
	}
	defer d.Close()
	f, err := d.Open(specName(id), os.O_RDONLY)
	if err != nil {
		return s, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return s, err
	}
	if st.Mode().Perm()&0o022 != 0 {
		return s, fmt.Errorf("%s: writable by group or others (mode %04o)", m.specPath(id), st.Mode().Perm())
	}
	if st.Size() > maxSpecFile {
		return s, fmt.Errorf("%s: %d bytes, at most %d", f.Name(), st.Size(), maxSpecFile)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && len(b) > 0 {
		return s, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", m.specPath(id), err)
	}
	return s, nil
}

// pruneSpecs removes the requests of workers that have no cgroup left
// (they ended while no hive watched); keep holds the ids that do.
func (m *Monitor) pruneSpecs(keep map[string]bool) {
	if m.cfg.SpecDir == "" {
		return
	}
	m.specMu.Lock()
	d, err := m.specDirLocked(false)
	m.specMu.Unlock()
	if err != nil {
		return
	}
	defer d.Close()
	names, err := d.Names()
	if err != nil {
		return
	}
	for _, name := range names {
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || keep[id] {
			continue
		}
		m.mu.Lock()
		_, held := m.workers[id]
		m.mu.Unlock()
		if !held {
			if err := d.Remove(name); err != nil {
				m.log.Warn("remove a kept spawn request", "worker", id, "err", err)
			}
		}
	}
}

// specDirLocked opens SpecDir and checks it: a directory of the hive's
// user that no one else may write (made 0700 when create is set; else
// fs.ErrNotExist when there is none yet). It is checked at every use, as
// its mode may change while the hive runs. Caller holds specMu and
// closes the Dir.
func (m *Monitor) specDirLocked(create bool) (*privdir.Dir, error) {
	return privdir.Open(m.cfg.SpecDir, privdir.Options{Create: create, Mode: 0o700})
}

// keptElsewhere returns the cgroups of the workers whose requests are
// kept but whose cgroup is not below the current parent (listed in
// here): where an earlier hive, with its tree elsewhere, started them.
func (m *Monitor) keptElsewhere(here map[string]bool) map[string]string {
	if !m.keepsSpecs() {
		return nil
	}
	m.specMu.Lock()
	defer m.specMu.Unlock()
	d, err := m.specDirLocked(false)
	if err != nil {
		return nil
	}
	names, err := d.Names()
	d.Close()
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, name := range names {
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || here[id] || ids.ValidWorkerID(id) != nil {
			continue
		}
		if s, err := m.readSpec(id); err == nil && s.Cgroup != "" && s.Spec.ID() == id {
			out[id] = s.Cgroup
		}
	}
	return out
}
