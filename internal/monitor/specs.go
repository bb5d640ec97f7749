package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// A worker's spawn request is kept in Config.SpecDir while it runs, so a
// hive that restarts and adopts it still knows its health check and
// restart policy (and its command line whole, not as /proc clips it).
// The file names the process it was written for: a request is only
// applied to that process.

// savedSpec is the file kept per worker: <SpecDir>/<id>.json, 0600 (the
// request's environment may hold secrets).
type savedSpec struct {
	Spec      api.SpawnRequest `json:"spec"`
	PID       int              `json:"pid"`
	StartedAt time.Time        `json:"started_at,omitzero"`
}

func (m *Monitor) specPath(id string) string {
	return filepath.Join(m.cfg.SpecDir, id+".json")
}

// saveSpec writes w's request for its current process. A failure costs
// only what a restarted hive will know of the worker, so it is logged.
func (m *Monitor) saveSpec(w *worker) {
	if m.cfg.SpecDir == "" {
		return
	}
	b, err := json.Marshal(savedSpec{Spec: w.spec, PID: w.pid, StartedAt: w.startedAt})
	if err == nil {
		err = writeFileAtomic(m.cfg.SpecDir, m.specPath(w.id), b)
	}
	if err != nil {
		m.log.Warn("keep the worker's spawn request for a restarted hive", "worker", w.id, "err", err)
	}
}

// dropSpec removes id's request: the worker is over for good.
func (m *Monitor) dropSpec(id string) {
	if m.cfg.SpecDir == "" {
		return
	}
	if err := os.Remove(m.specPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("remove the worker's kept spawn request", "worker", id, "err", err)
	}
}

// loadSpec returns the request kept for id when it was written for the
// process pid, started at startedAt (when both times are known: a start
// time is worked out from clock ticks since boot, so it may differ by
// a tick or so between two readings, and a reused pid is not started
// within the same second).
func (m *Monitor) loadSpec(id string, pid int, startedAt time.Time) (*api.SpawnRequest, error) {
	if m.cfg.SpecDir == "" {
		return nil, nil
	}
	b, err := readFileRegular(m.specPath(id), 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s savedSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", m.specPath(id), err)
	}
	switch {
	case s.Spec.ID() != id:
		return nil, fmt.Errorf("%s: written for %s", m.specPath(id), s.Spec.ID())
	case s.PID != pid || !s.StartedAt.IsZero() && !startedAt.IsZero() && absDuration(s.StartedAt.Sub(startedAt)) > time.Second:
		return nil, nil // another process: the request is not its own
	}
	if _, err := ValidateSpec(s.Spec); err != nil {
		return nil, fmt.Errorf("%s: %w", m.specPath(id), err)
	}
	return &s.Spec, nil
}

// pruneSpecs removes the requests of workers the monitor does not hold
// (they ended while no hive watched).
func (m *Monitor) pruneSpecs() {
	if m.cfg.SpecDir == "" {
		return
	}
	ents, err := os.ReadDir(m.cfg.SpecDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		m.mu.Lock()
		_, held := m.workers[id]
		m.mu.Unlock()
		if !held {
			m.dropSpec(id)
		}
	}
}

// writeFileAtomic writes path (in dir, made 0700) through a temporary
// file and a rename, so a crash leaves the old file or the new one.
func writeFileAtomic(dir, path string, b []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".spec-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// readFileRegular reads a regular file of at most max bytes, not
// through a link.
func readFileRegular(path string, max int) ([]byte, error) {
	b, err := readTail(path, max+1)
	if err == nil && len(b) > max {
		err = fmt.Errorf("%s: more than %d bytes", path, max)
	}
	return b, err
}

func absDuration(d time.Duration) time.Duration { return max(d, -d) }
