// Package monitor is rbee-hive's process monitor: it spawns workers into
// cgroups with limits, notices their exit at once, re-adopts workers a
// previous hive left running, stops them, and collects their telemetry in
// one pass over every worker.
package monitor

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/launch"
	"github.com/rbee-dev/rbee/internal/privdir"
	"github.com/rbee-dev/rbee/internal/procfs"
)

// Errors callers can tell apart with errors.Is.
var (
	ErrExists   = api.Class(api.ErrConflict, "worker already running")
	ErrRunning  = api.Class(api.ErrConflict, "worker running")
	ErrNotFound = api.Class(api.ErrNotFound, "no such worker")
	ErrBinary   = launch.ErrBinary
	ErrSpec     = api.Class(api.ErrInvalid, "bad worker spec")
	// ErrForbidden: the binary is outside Config.BinDir, reached through a
	// link, or writable by others.
	ErrForbidden = launch.ErrForbidden
)

// Platform is what the host offers the monitor. DetectPlatform fills it in;
// tests replace it to run the off-Linux code path on Linux.
type Platform struct {
	// Cgroups creates worker cgroups; nil means workers run as plain
	// processes without limits.
	Cgroups cgroups.Manager
	// NoCgroupsReason says why Cgroups is nil, for the log and /v1/info.
	NoCgroupsReason string
	// Proc reads per-process data; nil means the host has no procfs (off
	// Linux), and per-process telemetry is unavailable.
	Proc *procfs.FS
	// ClockTick is the kernel's USER_HZ for /proc times; 0 means 100.
	ClockTick uint64
}

// DefaultStopGrace is how long a stop waits after SIGTERM before it kills.
const DefaultStopGrace = 10 * time.Second

// Config configures a Monitor. The zero value works: plain processes, no
// logs, a 10 s stop grace period.
type Config struct {
	Platform Platform
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL; 0
	// means 10 s.
	StopGrace time.Duration
	// Logs receives each worker's stdout and stderr as <id>.log; nil
	// discards them. LogMaxSize (0: DefaultLogMaxSize) and LogFiles (0:
	// DefaultLogFiles) bound a run's log.
	Logs       *privdir.Dir
	LogMaxSize int64
	LogFiles   int
	// BinDir, when set, is the only directory workers may be spawned from
	// (see launch.OpenBinary); nil allows any absolute path.
	BinDir *launch.BinDir
	// User is who workers run as; nil means the hive's own user. Workers
	// never keep capabilities and always run with no_new_privs.
	User *launch.Credential
	// PidsMax is each worker's pids.max (no fork bomb); 0 means none.
	PidsMax int64
	// SpecDir keeps each running worker's spawn request (<id>.json), so
	// a hive that restarts and adopts it keeps its health check and
	// restart policy; "" keeps none.
	SpecDir string
	// GPU reports per-process GPU use for each pass; nil means none.
	GPU GPUSource
	// OnChange is called after a spawn, an exit or a stop, so the caller
	// can send a heartbeat at once. It must not block.
	OnChange func()
	// Logger receives the monitor's log; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// GPUSource reports, for one pass, the GPU use of every process on the host.
// It is the seam the GPU backends plug into.
type GPUSource interface {
	// GPUUsage returns per-process use keyed by host pid, from the newest
	// sample: it should not wait for a query, as every lifecycle event
	// waits for the pass. An error means the source has no good sample;
	// workers' GPU fields are then null with the error attached, never
	// zero.
	GPUUsage(ctx context.Context) (GPUUsage, error)
}

// GPUUsage is one sample of the GPU use of every process on the host.
type GPUUsage struct {
	// At is when the sample's query started; zero means there is no
	// sample yet, and GPU fields stay null without an error. A worker
	// that started after At is not in the sample either way: its GPU
	// fields stay null until the next one.
	At time.Time
	// ByPID lists, per host pid, the GPUs the process uses.
	ByPID map[int][]api.WorkerGPU
	// Partial lists what the source could not read while the rest could
	// (per-process SM use, say); it is attached to every worker on a GPU.
	Partial []string
}

// Info describes how the monitor runs workers, for /v1/info.
type Info struct {
	CgroupMode   cgroups.Mode `json:"cgroup_mode"`
	CgroupParent string       `json:"cgroup_parent,omitempty"`
	// CgroupPlacement says how the parent was chosen and why.
	CgroupPlacement string `json:"cgroup_placement,omitempty"`
	LimitsEnforced  bool   `json:"limits_enforced"`
	// LimitsReason says why limits are not enforced.
	LimitsReason string `json:"limits_reason,omitempty"`
}

// Monitor spawns, watches and measures workers. It is safe for concurrent use.
type Monitor struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	tick uint64

	mu       sync.Mutex
	workers  map[string]*worker
	spawning map[string]bool

	collectMu sync.Mutex // one pass at a time; owns the workers' sampling state
	specMu    sync.Mutex // the kept spawn requests (specs.go)

	closed  chan struct{}
	closeMu sync.Once
	wg      sync.WaitGroup // waiters of adopted workers, health checks, pending restarts
	// healthSem bounds the health checks in flight.
	healthSem  chan struct{}
	logMaxSize int64
	logFiles   int
}

// New returns a Monitor. It does not adopt existing workers; call Adopt.
func New(cfg Config) *Monitor {
	m := &Monitor{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		tick:     cfg.Platform.ClockTick,
		workers:  map[string]*worker{},
		spawning: map[string]bool{},
		closed:   make(chan struct{}),

		healthSem: make(chan struct{}, maxHealthChecks),
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.tick == 0 {
		m.tick = 100
	}
	if m.cfg.StopGrace == 0 {
		m.cfg.StopGrace = DefaultStopGrace
	}
	m.logMaxSize, m.logFiles = cmp.Or(m.cfg.LogMaxSize, DefaultLogMaxSize), cmp.Or(m.cfg.LogFiles, DefaultLogFiles)
	return m
}

// Info reports the cgroup layout and whether limits are enforced.
func (m *Monitor) Info() Info {
	p := m.cfg.Platform
	if p.Cgroups == nil {
		return Info{CgroupMode: cgroups.ModeNone, LimitsReason: p.NoCgroupsReason}
	}
	return Info{CgroupMode: p.Cgroups.Mode(), CgroupParent: p.Cgroups.Parent(), CgroupPlacement: p.Cgroups.How(), LimitsEnforced: true}
}

// Workers returns the records of the last collection pass (or of the spawn,
// for workers no pass has seen yet), sorted by id.
func (m *Monitor) Workers() []api.Worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Worker, 0, len(m.workers))
	for _, w := range m.workers {
		out = append(out, w.lastLocked())
	}
	slices.SortFunc(out, func(a, b api.Worker) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// StopGrace is the time a stop waits between SIGTERM and the kill.
func (m *Monitor) StopGrace() time.Duration { return m.cfg.StopGrace }

// Live counts the workers that have not exited.
func (m *Monitor) Live() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, w := range m.workers {
		if w.state != api.StateExited {
			n++
		}
	}
	return n
}

// Get returns one worker's latest record.
func (m *Monitor) Get(id string) (api.Worker, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.workers[id]
	if !ok {
		return api.Worker{}, ErrNotFound
	}
	return w.lastLocked(), nil
}

// Close stops watching adopted workers and releases every descriptor the
// passes hold. It neither stops workers nor removes their cgroups: a hive
// restart must find them running.
func (m *Monitor) Close() {
	m.closeMu.Do(func() { close(m.closed) })
	m.wg.Wait()
	m.collectMu.Lock()
	defer m.collectMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.workers {
		w.closeTaskIO()
		if w.cg != nil {
			_ = w.cg.Close()
		}
	}
}

func (m *Monitor) changed() {
	if m.cfg.OnChange != nil {
		m.cfg.OnChange()
	}
}

// defaultPath is a worker's PATH when the hive has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// workerEnv is the environment a worker starts with: not the hive's (a
// root daemon's environment is not the worker user's business, and holds
// rbee's own settings), but PATH, the locale and time zone, the user's
// HOME, USER and LOGNAME, and then the spec's variables.
func workerEnv(extra map[string]string, u *launch.Credential) []string {
	env := map[string]string{"PATH": defaultPath}
	if p := os.Getenv("PATH"); p != "" {
		env["PATH"] = p
	}
	for _, k := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	if u == nil {
		for _, k := range []string{"HOME", "USER", "LOGNAME"} {
			if v, ok := os.LookupEnv(k); ok {
				env[k] = v
			}
		}
	} else {
		env["HOME"] = "/"
		if u.Home != "" {
			env["HOME"] = u.Home
		}
		if u.Name != "" {
			env["USER"], env["LOGNAME"] = u.Name, u.Name
		}
	}
	maps.Copy(env, extra)
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}
