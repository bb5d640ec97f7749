package cgroups

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/rbee-dev/rbee/internal/reread"
)

// cfsPeriodUS is the CFS bandwidth period for CPU limits, the kernel's
// default on v1 and v2.
const cfsPeriodUS = 100000

// v1Controllers are the v1 hierarchies a worker joins: cpu for the limit,
// cpuacct for usage, memory for the limit and usage, pids for the task
// limit, freezer to stop every task at once before killing them.
var v1Controllers = []cgroup1.Name{cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Pids, cgroup1.Freezer}

// v1Unlimited is the smallest memory.limit_in_bytes that means "no limit"
// (the kernel reports PAGE_COUNTER_MAX pages rounded to a page).
const v1Unlimited = math.MaxInt64 / 2

type v1Manager struct {
	mode    Mode
	root    string
	parents map[cgroup1.Name]string // per controller, below its mount
	ctrls   []cgroup1.Name          // the ones mounted
}

func newV1(cfg Config, mode Mode, self map[string]string, parent string) (*v1Manager, error) {
	m := &v1Manager{mode: mode, root: cfg.root(), parents: map[cgroup1.Name]string{}}
	for _, c := range v1Controllers {
		own, ok := self[string(c)]
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(m.root, string(c))); err != nil {
			continue
		}
		m.ctrls = append(m.ctrls, c)
		m.parents[c] = resolveParent(own, parent)
	}
	for _, need := range []cgroup1.Name{cgroup1.Cpuacct, cgroup1.Memory} {
		if _, ok := m.parents[need]; !ok {
			return nil, fmt.Errorf("cgroup v1: the %s controller is not mounted under %s", need, m.root)
		}
	}
	for _, c := range m.ctrls {
		dir := m.dir(c, m.parents[c])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup parent: %w", err)
		}
		if err := unix.Access(filepath.Join(dir, "cgroup.procs"), unix.W_OK); err != nil {
			return nil, fmt.Errorf("cgroup parent %s: cgroup.procs not writable: %w", dir, err)
		}
	}
	return m, nil
}

func (m *v1Manager) Mode() Mode     { return m.mode }
func (m *v1Manager) Parent() string { return m.parents[cgroup1.Memory] }

func (m *v1Manager) dir(c cgroup1.Name, path string) string {
	return filepath.Join(m.root, string(c), path)
}

func (m *v1Manager) hierarchy() ([]cgroup1.Subsystem, error) {
	var out []cgroup1.Subsystem
	for _, c := range m.ctrls {
		switch c {
		case cgroup1.Cpu:
			out = append(out, cgroup1.NewCpu(m.root))
		case cgroup1.Cpuacct:
			out = append(out, cgroup1.NewCpuacct(m.root))
		case cgroup1.Memory:
			out = append(out, cgroup1.NewMemory(m.root))
		case cgroup1.Pids:
			out = append(out, cgroup1.NewPids(m.root))
		case cgroup1.Freezer:
			out = append(out, cgroup1.NewFreezer(m.root))
		}
	}
	return out, nil
}

func (m *v1Manager) pathFunc(rel string) cgroup1.Path {
	return func(c cgroup1.Name) (string, error) {
		p, ok := m.parents[c]
		if !ok {
			return "", cgroup1.ErrControllerNotActive
		}
		return filepath.Join(p, rel), nil
	}
}

func (m *v1Manager) Create(rel string, lim Limits) (_ Group, retErr error) {
	group, _, err := splitRel(rel)
	if err != nil {
		return nil, err
	}
	if lim.CPU > 0 && m.parents[cgroup1.Cpu] == "" {
		return nil, fmt.Errorf("cpu limit: the v1 cpu controller is not mounted")
	}
	g := m.open(rel)
	if pids, err := readPidsFile(filepath.Join(g.dirs[0], "cgroup.procs")); err == nil && len(pids) > 0 {
		return nil, fmt.Errorf("create cgroup %s: %w", g.path, ErrExists)
	}
	res := &specs.LinuxResources{}
	if lim.CPU > 0 {
		q := lim.CPU.QuotaUS(cfsPeriodUS)
		p := uint64(cfsPeriodUS)
		res.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	if lim.MemoryBytes > 0 {
		res.Memory = &specs.LinuxMemory{Limit: &lim.MemoryBytes}
		// memsw bounds memory plus swap: equal to the limit, no swap.
		// The file exists where swap is accounted.
		if exists(filepath.Join(m.dir(cgroup1.Memory, m.parents[cgroup1.Memory]), "memory.memsw.limit_in_bytes")) {
			res.Memory.Swap = &lim.MemoryBytes
		}
	}
	if lim.Pids > 0 && m.parents[cgroup1.Pids] != "" {
		res.Pids = &specs.LinuxPids{Limit: &lim.Pids}
	}
	defer func() {
		if retErr != nil {
			for _, c := range m.ctrls {
				_ = os.Remove(m.dir(c, filepath.Join(m.parents[c], rel)))
				_ = os.Remove(m.dir(c, filepath.Join(m.parents[c], group)))
			}
		}
	}()
	if _, err := cgroup1.New(m.pathFunc(rel), res, cgroup1.WithHierarchy(m.hierarchy)); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", g.path, err)
	}
	return g, nil
}

func (m *v1Manager) Open(rel string) (Group, error) {
	if _, _, err := splitRel(rel); err != nil {
		return nil, err
	}
	g := m.open(rel)
	if _, err := os.Stat(g.memDir); err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", g.path, err)
	}
	return g, nil
}

func (m *v1Manager) open(rel string) *v1Group {
	g := &v1Group{path: filepath.Join(m.parents[cgroup1.Memory], rel), mount: m.root}
	for _, c := range m.ctrls {
		d := m.dir(c, filepath.Join(m.parents[c], rel))
		g.dirs = append(g.dirs, d)
		switch c {
		case cgroup1.Memory:
			g.memDir = d
		case cgroup1.Cpuacct:
			g.cpuacctDir = d
		case cgroup1.Cpu:
			g.cpuDir = d
		case cgroup1.Pids:
			g.pidsDir = d
		case cgroup1.Freezer:
			g.freezerDir = d
		}
	}
	// Load reads no file when its hierarchy and path are given.
	g.cg, _ = cgroup1.Load(m.pathFunc(rel), cgroup1.WithHierarchy(m.hierarchy))
	g.cpu = reread.File{Path: filepath.Join(g.cpuacctDir, "cpuacct.usage")}
	g.memUse = reread.File{Path: filepath.Join(g.memDir, "memory.usage_in_bytes")}
	g.memStat = reread.File{Path: filepath.Join(g.memDir, "memory.stat")}
	g.procs = reread.File{Path: filepath.Join(g.memDir, "cgroup.procs"), Reopen: true, Dir: &reread.Dir{Path: g.memDir}}
	g.memMax = reread.File{Path: filepath.Join(g.memDir, "memory.limit_in_bytes")}
	if g.cpuDir != "" {
		g.cpuQuota = reread.File{Path: filepath.Join(g.cpuDir, "cpu.cfs_quota_us")}
		g.cpuPeriod = reread.File{Path: filepath.Join(g.cpuDir, "cpu.cfs_period_us")}
	}
	if g.pidsDir != "" {
		g.pidsMax = reread.File{Path: filepath.Join(g.pidsDir, "pids.max")}
	}
	return g
}

// Controllers returns the v1 controllers worker cgroups join.
func (m *v1Manager) Controllers() []string {
	out := make([]string, len(m.ctrls))
	for i, c := range m.ctrls {
		out[i] = string(c)
	}
	return out
}

func (m *v1Manager) List() ([]string, error) {
	return listTree(m.dir(cgroup1.Memory, m.parents[cgroup1.Memory]))
}

// How says the parent is below the hive's own cgroup in each controller.
func (m *v1Manager) How() string {
	return "below the hive's own cgroup in each " + string(m.mode) + " controller"
}

// Release removes the empty group cgroups and parents, per controller.
func (m *v1Manager) Release(context.Context) error {
	var dirs []string
	for _, c := range m.ctrls {
		dirs = append(dirs, m.dir(c, m.parents[c]))
	}
	return releaseDirs(dirs)
}

func (m *v1Manager) RemoveAll(ctx context.Context) error {
	var dirs []string
	for _, c := range m.ctrls {
		dirs = append(dirs, m.dir(c, m.parents[c]))
	}
	return removeAll(ctx, m, dirs)
}

type v1Group struct {
	// mu serialises Sample and Close: an exit cleans up while a pass reads.
	mu                         sync.Mutex
	path, mount                string
	dirs                       []string // one per controller; memory's is the reference
	memDir, cpuacctDir, cpuDir string
	pidsDir, freezerDir        string // "" when not mounted
	// cg is containerd's handle, for the lifecycle: freeze, thaw, delete.
	cg cgroup1.Cgroup

	cpu, memUse, memStat, procs reread.File
	// The limit files, re-read every LimitsEvery samples to notice a
	// change made behind the hive's back.
	cpuQuota, cpuPeriod, memMax, pidsMax reread.File
	sampler
	limitsCache
}

func (g *v1Group) Path() string { return g.path }

// Placement lists every controller's cgroup.procs: v1 has no
// clone-into-cgroup, so the starting process joins them itself before it
// executes the worker.
func (g *v1Group) Placement() (Placement, error) {
	procs := make([]string, len(g.dirs))
	for i, d := range g.dirs {
		procs[i] = filepath.Join(d, "cgroup.procs")
	}
	return Placement{Procs: procs, Mount: g.mount}, nil
}

var v1MemKeys = []string{"total_rss", "total_inactive_file", "rss", "inactive_file"}

func (g *v1Group) sampleLimits(s *Sample) error { return g.limitsCache.sample(s, g.readLimitsLocked) }

func (g *v1Group) Sample() (Sample, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var s Sample
	var err error
	if s.PIDs, err = g.readPids(&g.procs); err != nil {
		return s, err
	}
	if s.CPUUsageNS, err = g.readUint(&g.cpu); err != nil {
		return s, err
	}
	if s.MemUsage, err = g.readUint(&g.memUse); err != nil {
		return s, err
	}
	var v [4]uint64
	found, err := g.readKeyed(&g.memStat, v1MemKeys, v[:])
	if err != nil {
		return s, err
	}
	// The total_ keys include child cgroups; prefer them when present.
	s.MemAnon, s.MemInactiveFile = v[2], v[3]
	if found&1 != 0 {
		s.MemAnon = v[0]
	}
	if found&2 != 0 {
		s.MemInactiveFile = v[1]
	}
	return s, g.sampleLimits(&s)
}

func (g *v1Group) Limits() (Limits, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.readLimitsLocked()
}

// readLimits reads the limit files. Caller holds mu.
func (g *v1Group) readLimitsLocked() (Limits, error) {
	var l Limits
	readInt := func(f *reread.File) (int64, bool, error) {
		b, err := f.Read(&g.buf)
		if err != nil {
			return 0, false, err
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false, nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %q is not an integer", f.Path, clip(b))
		}
		return v, true, nil
	}
	if g.cpuDir != "" {
		q, _, qerr := readInt(&g.cpuQuota)
		p, _, perr := readInt(&g.cpuPeriod)
		if err := errors.Join(qerr, perr); err != nil {
			return l, err
		}
		if q > 0 && p > 0 {
			l.CPU = cpuFromQuota(q, uint64(p))
		}
	}
	v, _, err := readInt(&g.memMax)
	if err != nil {
		return l, err
	}
	if v > 0 && v < v1Unlimited {
		l.MemoryBytes = v
	}
	if g.pidsDir != "" {
		v, ok, err := readInt(&g.pidsMax)
		if err != nil {
			return l, err
		}
		if ok && v > 0 {
			l.Pids = v
		}
	}
	return l, nil
}

// OOMKills reads oom_kill from memory.oom_control by hand: containerd's
// Stat reads it too, but has nothing for kernels before 4.13 that lack the
// counter, where a hit limit (memory.failcnt) is the only evidence.
func (g *v1Group) OOMKills() (uint64, bool, error) {
	path := filepath.Join(g.memDir, "memory.oom_control")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", path, err)
	}
	var v [1]uint64
	found, err := ParseKeyed(b, []string{"oom_kill"}, v[:])
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", path, err)
	}
	if found == 1 {
		return v[0], true, nil
	}
	// Kernels before 4.13 have no oom_kill counter: a hit limit is the best
	// evidence there is.
	fc, err := readInt(filepath.Join(g.memDir, "memory.failcnt"))
	if err != nil {
		return 0, false, err
	}
	if fc > 0 {
		return 1, false, nil
	}
	return 0, false, nil
}

// Kill freezes the cgroup (so no task forks or runs while the pids are
// read and killed), SIGKILLs every task, thaws it so the kills take
// effect, and repeats until the cgroup is empty; freezing and thawing go
// through containerd. Without the freezer it kills the pids it reads.
func (g *v1Group) Kill(ctx context.Context) error {
	procs := filepath.Join(g.memDir, "cgroup.procs")
	return killUntilEmpty(ctx, procs, func() error {
		if g.freezerDir == "" || g.cg == nil {
			return signalPids(procs, syscall.SIGKILL)
		}
		if err := g.cg.Freeze(); err != nil {
			return errors.Join(fmt.Errorf("freeze %s: %w", g.path, err), signalPids(procs, syscall.SIGKILL))
		}
		err := signalPids(filepath.Join(g.freezerDir, "cgroup.procs"), syscall.SIGKILL)
		return errors.Join(err, signalPids(procs, syscall.SIGKILL), g.cg.Thaw())
	})
}

// Delete kills what is left and removes the cgroup in every controller
// (containerd), retrying while the kernel still counts exiting tasks,
// until ctx is done.
func (g *v1Group) Delete(ctx context.Context) error {
	_ = g.Close()
	if err := g.Kill(ctx); err != nil {
		return err
	}
	if g.cg == nil {
		return removeDirs(ctx, g.dirs)
	}
	return deleteUntilGone(ctx, g.path, g.cg.Delete, g.dirs)
}

func (g *v1Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.cpu.Close(), g.memUse.Close(), g.memStat.Close(), g.procs.Close(),
		g.cpuQuota.Close(), g.cpuPeriod.Close(), g.memMax.Close(), g.pidsMax.Close())
}
