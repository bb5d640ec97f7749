package monitor

import (
	"os"
	"os/exec"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/procfs"
	"github.com/rbee-dev/rbee/internal/reread"
)

// worker is the monitor's state for one worker. Fields under "identity"
// never change after creation; "exit" fields and last are guarded by
// Monitor.mu; the sampling state belongs to the collection pass.
type worker struct {
	// identity
	id, group, instance string
	binary              string
	args                []string
	model               *string
	pid                 int
	cmd                 *exec.Cmd   // nil for adopted workers
	proc                *os.Process // signals go through its pidfd: no pid-reuse race
	cg                  cgroups.Group
	limits              cgroups.Limits
	startedAt           time.Time
	startTicks          uint64 // its start in clock ticks after boot; 0: unknown
	oomBase             uint64 // OOM kills already counted when adopted
	logFile             *os.File
	done                chan struct{} // closed once the worker has exited and is cleaned up
	// spec is what it was spawned with (restarts run it again); zero for
	// adopted workers.
	spec    api.SpawnRequest
	restart *restartSpec // nil: never restarted

	// lifecycle, guarded by Monitor.mu
	health   *workerHealth // nil: ready once its process runs
	runs     *runs         // shared by the runs of one id across restarts
	stopping bool          // a stop was asked: its exit is no failure
	stopped  bool          // its exit came after a stop was asked
	logTail  string        // the end of its output, once exited

	// exit, guarded by Monitor.mu
	state    api.State
	exitCode *int
	signal   *string
	oom      *bool
	exitedAt time.Time
	// cleanupErr says what was left behind after the exit (a cgroup that
	// would not go); Stop reports it.
	cleanupErr error
	last       api.Worker
	seen       bool // a pass has produced last

	// sampling state, owned by the collection pass
	prev    sampleMark
	taskIO  map[int]*taskIO
	readBuf []byte
	// ioDone is the I/O of the worker's tasks that have exited, as last
	// read (cgroup v1 and no cgroup, where I/O is counted per task).
	ioDone cgroups.IOCounters
}

// sampleMark is what the next pass needs to turn counters into rates.
type sampleMark struct {
	ok      bool
	at      time.Time
	cpuNS   uint64
	io      cgroups.IOCounters
	hasIO   bool
	taskIOs bool // io came from per-task counters
}

// taskIO is one process's /proc/<pid>/io, kept open between passes.
type taskIO struct {
	file reread.File
	prev procfs.IO
	ok   bool
}

// base returns the parts of the record that need no sampling. Caller holds
// Monitor.mu.
func (w *worker) baseLocked(now time.Time) api.Worker {
	r := api.Worker{
		ID:    w.id,
		PID:   w.pid,
		State: w.stateLocked(),
		WorkerStatic: api.WorkerStatic{Group: w.group, Instance: w.instance, Binary: w.binary, Args: w.args, Model: w.model,
			LimitsEnforced: w.cg != nil},
		WorkerExit: api.WorkerExit{ExitCode: w.exitCode, Signal: w.signal, OOMKilled: w.oom},
	}
	if w.health != nil {
		r.Health = w.health.record()
	}
	if h := w.runs; h != nil {
		r.Restarts, r.LastExit, r.RestartError = h.restarts, h.lastExit, h.err
	}
	if w.cg != nil {
		r.Cgroup = w.cg.Path()
		if w.limits.CPU > 0 {
			r.CPULimitPct = api.Ptr(w.limits.CPU.Percent())
		}
		if w.limits.MemoryBytes > 0 {
			r.MemLimitBytes = api.Ptr(w.limits.MemoryBytes)
		}
		if w.limits.Pids > 0 {
			r.PidsLimit = api.Ptr(w.limits.Pids)
		}
	}
	if !w.startedAt.IsZero() {
		r.StartedAt = api.Ptr(w.startedAt)
		end := now
		if w.state == api.StateExited {
			end = w.exitedAt
		}
		r.UptimeS = api.Ptr(max(end.Sub(w.startedAt).Seconds(), 0))
	}
	if w.state == api.StateExited {
		r.ExitedAt = api.Ptr(w.exitedAt)
		r.Stopped = w.stopped
		r.LogTail = w.logTail
	}
	return r
}

// stateLocked is the worker's state: its process's, and, while that
// runs, its health check's when it has one. Caller holds Monitor.mu.
func (w *worker) stateLocked() api.State {
	if w.state == api.StateReady && w.health != nil {
		return w.health.state
	}
	return w.state
}

// lastLocked returns the latest record. Caller holds Monitor.mu.
func (w *worker) lastLocked() api.Worker {
	if !w.seen || w.state == api.StateExited {
		return w.baseLocked(time.Now())
	}
	return w.last
}

// closeTaskIO releases the per-task /proc/<pid>/io descriptors of an
// exited worker. Called only by the collection pass, which owns them.
func (w *worker) closeTaskIO() {
	for pid, t := range w.taskIO {
		_ = t.file.Close()
		delete(w.taskIO, pid)
	}
}

func (w *worker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}
