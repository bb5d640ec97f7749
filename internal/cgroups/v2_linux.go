package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"math"

	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"

	"github.com/rbee-dev/rbee/internal/reread"
)

// v2Controllers are enabled on the way down to worker cgroups when the
// kernel offers them: cpu and memory for limits, io and pids for telemetry
// and the pids limit.
var v2Controllers = []string{"cpu", "memory", "io", "pids"}

type v2Manager struct {
	// mu orders what changes the tree's top (ensure: a systemd scope made
	// again, its keeper) with what creates below it and what releases
	// it: concurrent spawns would otherwise each make a scope and a
	// keeper, and a release could end the scope under a new worker.
	mu     sync.Mutex
	root   string // mount point
	parent string // parent path below root, "/a/b"
	how    string // how the parent was chosen, for /v1/info
	ctrls  []string
	// ensure makes the parent again when it is gone (a systemd scope
	// stopped behind the hive's back); nil for a parent given.
	ensure func() error
	// keeper keeps a systemd scope alive; nil otherwise.
	keeper *keeper
}

func newV2(cfg Config, self map[string]string, parent string) (*v2Manager, error) {
	own, ok := self[""]
	if !ok {
		return nil, fmt.Errorf("own cgroup: no cgroup v2 entry in /proc/self/cgroup")
	}
	m := &v2Manager{root: cfg.root()}
	if err := m.place(cfg, own, parent); err != nil {
		return nil, err
	}
	if err := m.ensure(); err != nil {
		m.keeper.stop()
		return nil, err
	}
	return m, nil
}

func (m *v2Manager) Mode() Mode { return ModeV2 }
func (m *v2Manager) Parent() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.parent
}
func (m *v2Manager) How() string         { return m.how }
func (m *v2Manager) dir(p string) string { return filepath.Join(m.root, p) }

// makeParent creates the parent below the root and enables the
// controllers on the way down to it.
func (m *v2Manager) makeParent() error {
	dir := m.dir(m.parent)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup parent: %w", err)
	}
	if err := unix.Access(filepath.Join(dir, "cgroup.procs"), unix.W_OK); err != nil {
		return fmt.Errorf("cgroup parent %s: cgroup.procs not writable: %w", dir, err)
	}
	ctrls, err := m.enableDown(m.parent)
	if err != nil {
		return err
	}
	m.ctrls = ctrls
	return nil
}

// enableDown makes the controllers available in the children of target by
// writing cgroup.subtree_control at every level from just below the root
// down to target. The root's own subtree_control is never written: if a
// controller is not enabled there, the system's manager (systemd) decides,
// and the hive does without it. It returns the controllers target's
// children get.
func (m *v2Manager) enableDown(target string) ([]string, error) {
	rootCtrls, err := readFields(filepath.Join(m.root, "cgroup.subtree_control"))
	if err != nil {
		return nil, fmt.Errorf("read root controllers: %w", err)
	}
	want := intersect(v2Controllers, rootCtrls)
	parts := strings.Split(strings.Trim(target, "/"), "/")
	for i := range parts {
		level := "/" + strings.Join(parts[:i+1], "/")
		avail, err := readFields(filepath.Join(m.dir(level), "cgroup.controllers"))
		if err != nil {
			return nil, fmt.Errorf("read controllers of %s: %w", level, err)
		}
		want = intersect(want, avail)
		if err := m.enableAt(level, want); err != nil {
			return nil, err
		}
	}
	return want, nil
}

// enableAt writes the controllers missing from level's subtree_control. It
// never moves a process: a level that holds processes cannot delegate
// (cgroup v2's no-internal-processes rule), and the error says so.
func (m *v2Manager) enableAt(level string, ctrls []string) error {
	path := filepath.Join(m.dir(level), "cgroup.subtree_control")
	have, err := readFields(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var missing []string
	for _, c := range ctrls {
		if !slices.Contains(have, c) {
			missing = append(missing, "+"+c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	err = os.WriteFile(path, []byte(strings.Join(missing, " ")), 0)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EBUSY) {
		procs, _ := readPidsFile(filepath.Join(m.dir(level), "cgroup.procs"))
		return fmt.Errorf("enable %s in %s: %w: %s holds processes %v, and cgroup v2 lets no cgroup with processes delegate controllers; give --cgroup-parent a path outside it", strings.Join(missing, " "), path, err, level, clipPids(procs))
	}
	return fmt.Errorf("enable %s in %s: %w", strings.Join(missing, " "), path, err)
}

// clipPids keeps a message short.
func clipPids(p []int) []int {
	if len(p) > 8 {
		return p[:8]
	}
	return p
}

func (m *v2Manager) Create(rel string, lim Limits) (_ Group, retErr error) {
	group, _, err := splitRel(rel)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if lim.CPU > 0 && !slices.Contains(m.ctrls, "cpu") {
		return nil, fmt.Errorf("cpu limit: the cpu controller is not delegated to %s", m.parent)
	}
	if lim.MemoryBytes > 0 && !slices.Contains(m.ctrls, "memory") {
		return nil, fmt.Errorf("memory limit: the memory controller is not delegated to %s", m.parent)
	}
	if !m.intactLocked() {
		// Removed behind the hive's back (a stopped systemd scope, or
		// its keeper killed: the scope ends with its last worker): made
		// again as at the start.
		if err := m.ensure(); err != nil {
			return nil, fmt.Errorf("make the workers' cgroup tree again: %w", err)
		}
	}
	groupPath := filepath.Join(m.parent, group)
	path := filepath.Join(m.parent, rel)
	dir := m.dir(path)
	if pids, err := readPidsFile(filepath.Join(dir, "cgroup.procs")); err == nil && len(pids) > 0 {
		return nil, fmt.Errorf("create cgroup %s: %w", path, ErrExists)
	}
	if err := os.MkdirAll(m.dir(groupPath), 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", groupPath, err)
	}
	defer func() {
		if retErr != nil {
			_ = os.Remove(dir)
			_ = os.Remove(m.dir(groupPath)) // fails, as it should, while other workers of the group live
		}
	}()
	if err := m.enableAt(groupPath, m.ctrls); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	res := &cgroup2.Resources{}
	if lim.CPU > 0 {
		q := lim.CPU.QuotaUS(cfsPeriodUS)
		p := uint64(cfsPeriodUS)
		res.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&q, &p)}
	}
	if lim.MemoryBytes > 0 {
		res.Memory = &cgroup2.Memory{Max: &lim.MemoryBytes}
		// memory.swap.max bounds swap alone: 0 keeps memory plus swap
		// within the limit. The file exists where swap is accounted.
		if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); err == nil {
			res.Memory.Swap = new(int64)
		}
	}
	if lim.Pids > 0 && slices.Contains(m.ctrls, "pids") {
		res.Pids = &cgroup2.Pids{Max: lim.Pids}
	}
	cg, err := cgroup2.Load(path, cgroup2.WithMountpoint(m.root))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", path, err)
	}
	if err := cg.Update(res); err != nil {
		return nil, fmt.Errorf("set limits on cgroup %s: %w", path, err)
	}
	return m.open(path), nil
}

func (m *v2Manager) Open(rel string) (Group, error) {
	if _, _, err := splitRel(rel); err != nil {
		return nil, err
	}
	path := filepath.Join(m.parent, rel)
	if _, err := os.Stat(m.dir(path)); err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", path, err)
	}
	return m.open(path), nil
}

// OpenPath opens the worker cgroup at path (absolute below the mount
// root, ending in group/instance), wherever it is.
func (m *v2Manager) OpenPath(path string) (Group, error) {
	clean := filepath.Clean("/" + path)
	if clean != path || CheckParent(path) != nil {
		return nil, fmt.Errorf("open cgroup %q: not a clean absolute path", path)
	}
	if _, _, err := splitRel(filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path)); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(m.dir(path), "cgroup.procs")); err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", path, err)
	}
	return m.open(path), nil
}

func (m *v2Manager) open(path string) *v2Group {
	dir := m.dir(path)
	f := func(name string) reread.File { return reread.File{Path: filepath.Join(dir, name)} }
	// Load only checks the path's syntax; path is ours and valid.
	cg, _ := cgroup2.Load(path, cgroup2.WithMountpoint(m.root))
	return &v2Group{
		path: path, dir: dir, mount: m.root, cg: cg,
		cpu: f("cpu.stat"), memCur: f("memory.current"), memStat: f("memory.stat"),
		io: f("io.stat"), procs: f("cgroup.procs"),
		cpuMax: f("cpu.max"), memMax: f("memory.max"), pidsMax: f("pids.max"),
	}
}

// Controllers returns the controllers worker cgroups get.
func (m *v2Manager) Controllers() []string { return slices.Clone(m.ctrls) }

func (m *v2Manager) List() ([]string, error) { return listTree(m.dir(m.parent)) }

func (m *v2Manager) RemoveAll(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keeper != nil || m.scope() {
		// The scope's directory holds the keeper's leaf until the keeper
		// ends, and systemd removes it then: only the workers' cgroups
		// are the hive's to remove.
		return errors.Join(removeAll(ctx, m, nil), m.releaseLocked(ctx))
	}
	return removeAll(ctx, m, []string{m.dir(m.parent)})
}

// intactLocked reports whether the tree's top is as ensure left it: the
// parent exists and, for a systemd scope, its keeper still holds it.
func (m *v2Manager) intactLocked() bool {
	if _, err := os.Stat(m.dir(m.parent)); err != nil {
		return false
	}
	if !m.scope() {
		return true
	}
	pids, err := readPidsFile(filepath.Join(m.dir(m.parent), keeperLeaf, "cgroup.procs"))
	return err == nil && len(pids) > 0
}

// scope reports whether the parent is the systemd scope.
func (m *v2Manager) scope() bool { return filepath.Base(m.parent) == SystemdScope }

// Release removes the empty group cgroups and, when no worker is left,
// the parent; a systemd scope is ended by stopping its keeper (systemd
// then removes it), as a scope without processes is stopped.
func (m *v2Manager) Release(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.releaseLocked(ctx)
}

func (m *v2Manager) releaseLocked(ctx context.Context) error {
	dir := m.dir(m.parent)
	if !m.scope() {
		return releaseDirs([]string{dir})
	}
	if err := releaseDirs([]string{dir}); err != nil {
		return err
	}
	if rels, err := listTree(dir); err != nil || len(rels) > 0 {
		return nil // workers live on: so does the scope
	}
	leaf := filepath.Join(dir, keeperLeaf)
	m.keeper.stop()
	// A keeper an earlier hive started is not this one's child: the
	// kernel kills what the leaf holds (cgroup.kill, no pid to be
	// reused), or, before Linux 5.14, each pid it lists.
	_ = killUntilEmpty(ctx, filepath.Join(leaf, "cgroup.procs"), func() error {
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.kill"), []byte("1"), 0); !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return signalPids(filepath.Join(leaf, "cgroup.procs"), unix.SIGKILL)
	})
	return rmdirIfUnused(leaf)
}

type v2Group struct {
	// mu serialises Sample and Close: an exit cleans up while a pass reads.
	mu               sync.Mutex
	path, dir, mount string
	// cg is containerd's handle, for the lifecycle: kill and delete.
	cg                   *cgroup2.Manager
	cpu, memCur, memStat reread.File
	io, procs            reread.File
	// The limit files, re-read every LimitsEvery samples to notice a
	// change made behind the hive's back.
	cpuMax, memMax, pidsMax reread.File
	sampler
	limitsCache
}

func (g *v2Group) Path() string { return g.path }

// Placement opens the cgroup for clone3(CLONE_INTO_CGROUP); the descriptor
// only has to live through the start.
func (g *v2Group) Placement() (Placement, error) {
	fd, err := unix.Open(g.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Placement{}, fmt.Errorf("open cgroup %s: %w", g.dir, err)
	}
	return Placement{Dir: os.NewFile(uintptr(fd), g.dir), Mount: g.mount}, nil
}

var (
	v2CPUKeys = []string{"usage_usec"}
	v2MemKeys = []string{"anon", "inactive_file"}
)

func (g *v2Group) sampleLimits(s *Sample) error { return g.limitsCache.sample(s, g.readLimitsLocked) }

func (g *v2Group) Sample() (Sample, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var s Sample
	var err error
	if s.PIDs, err = g.readPids(&g.procs); err != nil {
		return s, err
	}
	var v [2]uint64
	if found, err := g.readKeyed(&g.cpu, v2CPUKeys, v[:1]); err != nil {
		return s, err
	} else if found != 1 {
		return s, fmt.Errorf("%s: no usage_usec", g.cpu.Path)
	}
	s.CPUUsageNS = v[0] * 1000
	if s.MemUsage, err = g.readUint(&g.memCur); err != nil {
		return s, err
	}
	if _, err := g.readKeyed(&g.memStat, v2MemKeys, v[:]); err != nil {
		return s, err
	}
	s.MemAnon, s.MemInactiveFile = v[0], v[1]
	b, err := g.io.Read(&g.buf)
	if err != nil {
		return s, err
	}
	if s.IO, err = ParseIOStat(b); err != nil {
		return s, fmt.Errorf("%s: %w", g.io.Path, err)
	}
	s.HasIO = true
	return s, g.sampleLimits(&s)
}

func (g *v2Group) Limits() (Limits, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.readLimitsLocked()
}

// readLimits reads the limit files; a file that does not exist (the
// controller is not enabled) means no limit. Caller holds mu.
func (g *v2Group) readLimitsLocked() (Limits, error) {
	var l Limits
	b, err := g.cpuMax.Read(&g.buf)
	if err == nil {
		q, p, ok, err := ParseCPUMax(b)
		if err != nil {
			return l, fmt.Errorf("%s: %w", g.cpuMax.Path, err)
		}
		if ok {
			l.CPU = cpuFromQuota(q, p)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return l, err
	}
	for _, f := range []struct {
		file *reread.File
		dst  *int64
	}{{&g.memMax, &l.MemoryBytes}, {&g.pidsMax, &l.Pids}} {
		b, err := f.file.Read(&g.buf)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return l, err
		}
		v, ok, err := ParseUint(b)
		if err != nil {
			return l, fmt.Errorf("%s: %w", f.file.Path, err)
		}
		if ok {
			*f.dst = int64(min(v, math.MaxInt64))
		}
	}
	return l, nil
}

// OOMKills reads oom_kill from memory.events through containerd.
func (g *v2Group) OOMKills() (uint64, bool, error) {
	st, err := g.cg.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("read memory.events of %s: %w", g.path, err)
	}
	if st.MemoryEvents == nil {
		return 0, false, fmt.Errorf("read memory.events of %s: not available", g.path)
	}
	return st.MemoryEvents.OomKill, true, nil
}

// Kill writes cgroup.kill (Linux 5.14+; containerd falls back to killing
// the pids it reads), which kills every task at once, so a forking
// worker cannot escape between a read of the pids and the kill; it
// repeats until the cgroup is empty.
func (g *v2Group) Kill(ctx context.Context) error {
	return killUntilEmpty(ctx, filepath.Join(g.dir, "cgroup.procs"), g.cg.Kill)
}

// Delete kills what is left and removes the cgroup (containerd), retrying
// while the kernel still counts exiting tasks, until ctx is done.
func (g *v2Group) Delete(ctx context.Context) error {
	_ = g.Close()
	if err := g.Kill(ctx); err != nil {
		return err
	}
	return deleteUntilGone(ctx, g.path, g.cg.Delete, []string{g.dir})
}

func (g *v2Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.cpu.Close(), g.memCur.Close(), g.memStat.Close(), g.io.Close(), g.procs.Close(),
		g.cpuMax.Close(), g.memMax.Close(), g.pidsMax.Close())
}
