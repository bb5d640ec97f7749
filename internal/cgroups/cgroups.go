// Package cgroups creates, limits, places, reads, kills and removes the
// cgroups workers run in, on cgroup v2 (unified) and on v1 or hybrid hosts.
//
// What containerd/cgroups does (the design card's library, used for the
// whole lifecycle wherever it stays inside the hive's subtree):
//   - v1: creating a worker cgroup in every controller with its limits
//     (cgroup1.New), freezing and thawing it, deleting it;
//   - v2: writing the limits (cgroup2.Manager.Update), killing it
//     (cgroup.kill), deleting it, reading memory.events at exit.
//
// What is written here, and why:
//   - v2 placement (place_linux.go): where the workers' tree goes — a
//     delegated systemd scope made over D-Bus (go-systemd, as runc does),
//     a cgroup below the mount root, or --cgroup-parent — never the
//     hive's own cgroup, whose subtree_control the hive never writes and
//     out of which it never moves itself; cgroup2.NewManager writes
//     cgroup.subtree_control from the mount root down, and rbee must
//     never write the root's: enableDown does it from just below the root
//     down to the tree's top;
//   - placement before the worker's first instruction: on v2 a descriptor
//     for clone3(CLONE_INTO_CGROUP), on v1 the cgroup.procs files the
//     launch shim joins;
//   - the reads of every collection pass (Sample: pids, CPU, memory, I/O
//     and the limits in force), on descriptors kept open: containerd's
//     Stat reads every file of every controller and is measured about 11x
//     slower for 100 workers (benchmarks/collect_linux_test.go);
//   - v1 OOM counting, for kernels without the oom_kill counter;
//   - listing worker cgroups for adoption, and the retry of deletion
//     while the kernel still counts exiting tasks.
package cgroups

import (
	"context"
	"io"
	"os"

	"github.com/rbee-dev/rbee/internal/errdefs"
	"github.com/rbee-dev/rbee/internal/limits"
)

// Mode says which cgroup layout a host runs.
type Mode string

// The cgroup layouts.
const (
	ModeNone   Mode = "none"   // no usable cgroups (not Linux, or not mounted)
	ModeV1     Mode = "v1"     // legacy: v1 controllers only
	ModeHybrid Mode = "hybrid" // v1 controllers plus a controller-less cgroup2
	ModeV2     Mode = "v2"     // unified: cgroup2 with controllers
)

// ErrExists is returned by Create when the cgroup already holds processes.
var ErrExists = errdefs.Class(errdefs.ErrConflict, "cgroup already holds processes")

// ErrLocked is returned by Manager.Lock when another process holds the
// parent.
var ErrLocked = errdefs.Class(errdefs.ErrConflict, "another hive manages this cgroup parent")

// Limits are the resource limits of one worker cgroup; zero means none.
type Limits struct {
	CPU         limits.CPU
	MemoryBytes int64
	// Pids bounds the number of tasks (pids.max): no fork bomb.
	Pids int64
}

// Placement is how a process is put into a worker cgroup before any of its
// own code runs.
type Placement struct {
	// Dir is the cgroup v2 directory, open for CLONE_INTO_CGROUP; the
	// caller closes it once the process has started.
	Dir *os.File
	// Procs are the cgroup v1 cgroup.procs files (one per controller) the
	// starting process writes its pid to.
	Procs []string
	// Mount is the cgroup filesystem's mount point, which a root worker
	// must only see read-only.
	Mount string
}

// Sample is one reading of a worker cgroup's counters.
type Sample struct {
	// CPUUsageNS is the cumulative CPU time of every task, in nanoseconds.
	CPUUsageNS uint64
	// MemUsage is the memory charged to the cgroup, page cache included.
	MemUsage uint64
	// MemAnon is anonymous memory (the RSS of the tasks).
	MemAnon uint64
	// MemInactiveFile is reclaimable page cache; usage minus it is the
	// working set.
	MemInactiveFile uint64
	// Limits are the limits in force as this pass read them, so a change
	// made behind the hive's back shows.
	Limits Limits
	// IO holds cumulative block I/O bytes when HasIO is true. cgroup v1
	// blkio counts nothing unless a throttle rule exists for the device, so
	// v1 groups leave HasIO false and callers use per-task counters.
	IO    IOCounters
	HasIO bool
	// PIDs lists every process in the cgroup.
	PIDs []int
}

// Group is one worker's cgroup.
type Group interface {
	// Path is the cgroup's path below the hierarchy root (on v1, in the
	// memory controller), for display.
	Path() string
	// Placement says how to start a process inside the cgroup.
	Placement() (Placement, error)
	// Sample reads the counters. Descriptors stay open between calls; the
	// PIDs slice is reused by the next call.
	Sample() (Sample, error)
	// Limits reads back the limits in force.
	Limits() (Limits, error)
	// OOMKills returns the number of OOM kills in the cgroup. exact is
	// false where the kernel keeps no such counter and n is a best guess.
	OOMKills() (n uint64, exact bool, err error)
	// Kill kills every process in the cgroup at once (v2 cgroup.kill; v1
	// freezes the cgroup first, so nothing forks while it is killed) and
	// waits until the cgroup is empty or ctx is done.
	Kill(ctx context.Context) error
	// Delete kills anything left inside and removes the cgroup, retrying
	// while the kernel reports it busy, until ctx is done.
	Delete(ctx context.Context) error
	// Close releases the open descriptors without removing the cgroup.
	Close() error
}

// Manager owns the subtree of worker cgroups below one parent.
type Manager interface {
	// Mode is the host's cgroup layout.
	Mode() Mode
	// Parent is the parent cgroup's path below the hierarchy root (on
	// v1, in the memory controller).
	Parent() string
	// How says how the parent was chosen and why, for /v1/info and the
	// log.
	How() string
	// Create makes <parent>/<rel> with the limits; rel is "group/instance".
	Create(rel string, lim Limits) (Group, error)
	// Open opens an existing <parent>/<rel>, e.g. to adopt its processes.
	Open(rel string) (Group, error)
	// List returns every "group/instance" below the parent.
	List() ([]string, error)
	// RemoveAll kills every process below the parent and removes every
	// cgroup there, the parent included.
	RemoveAll(ctx context.Context) error
	// Release removes what no worker uses of what the hive made: empty
	// group cgroups and an empty parent (with a systemd scope's keeper),
	// when the hive exits. Workers and their cgroups stay.
	Release(ctx context.Context) error
	// Lock claims the parent for this process until the returned closer
	// is closed (or the process ends): a second hive on the same parent
	// would adopt, sample and remove the first one's workers. It fails
	// with ErrLocked when another process holds it.
	Lock() (io.Closer, error)
}

// PathOpener opens a worker cgroup by its path below the mount root,
// wherever an earlier hive's tree put it (cgroup v2, where one path names
// a cgroup in every controller).
type PathOpener interface {
	// OpenPath opens the existing worker cgroup at path,
	// ".../<group>/<instance>".
	OpenPath(path string) (Group, error)
}

// LimitsEvery is how often Sample reads the limit files back: every
// LimitsEvery-th sample, the first included (about every 10 s at the
// default interval). Limits change only when someone changes them behind
// the hive's back; reading them every pass would double the files a pass
// reads (BenchmarkStress100Workers). Limits always reads them.
const LimitsEvery = 10

// limitsCache holds the limits last read, for the samples in between.
type limitsCache struct {
	limits  Limits
	samples uint64
}

// sample puts the limits into s, reading them with read when due.
func (c *limitsCache) sample(s *Sample, read func() (Limits, error)) error {
	due := c.samples%LimitsEvery == 0
	c.samples++
	if !due {
		s.Limits = c.limits
		return nil
	}
	l, err := read()
	if err != nil {
		c.samples = 0 // try again next time
		return err
	}
	c.limits, s.Limits = l, l
	return nil
}
