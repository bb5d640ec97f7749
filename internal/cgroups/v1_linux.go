package cgroups

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
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
// cpuacct for usage, memory for the limit and usage, pids to count and kill.
var v1Controllers = []cgroup1.Name{cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Pids}

// v1Unlimited is the smallest memory.limit_in_bytes that means "no limit"
// (the kernel reports PAGE_COUNTER_MAX pages rounded to a page).
const v1Unlimited = math.MaxInt64 / 2

type v1Manager struct {
	mode    Mode
	root    string
	parents map[cgroup1.Name]string // per controller, below its mount
	ctrls   []cgroup1.Name          // the ones mounted
}

func newV1(cfg Config, mode Mode, self selfCgroups, parent string) (*v1Manager, error) {
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
	g := &v1Group{path: filepath.Join(m.parents[cgroup1.Memory], rel)}
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
		}
	}
	g.cpu = reread.File{Path: filepath.Join(g.cpuacctDir, "cpuacct.usage")}
	g.memUse = reread.File{Path: filepath.Join(g.memDir, "memory.usage_in_bytes")}
	g.memStat = reread.File{Path: filepath.Join(g.memDir, "memory.stat")}
	g.procs = reread.File{Path: filepath.Join(g.memDir, "cgroup.procs"), Reopen: true}
	return g
}

func (m *v1Manager) List() ([]string, error) {
	return listTree(m.dir(cgroup1.Memory, m.parents[cgroup1.Memory]))
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
	path                       string
	dirs                       []string // one per controller; memory's is the reference
	memDir, cpuacctDir, cpuDir string

	cpu, memUse, memStat, procs reread.File
	buf                         []byte
	pids                        []int
}

func (g *v1Group) Path() string { return g.path }

func (g *v1Group) Start(cmd *exec.Cmd) error {
	procs := make([]string, len(g.dirs))
	for i, d := range g.dirs {
		procs[i] = filepath.Join(d, "cgroup.procs")
	}
	return startViaShim(cmd, procs)
}

var v1MemKeys = []string{"total_rss", "total_inactive_file", "rss", "inactive_file"}

func (g *v1Group) Sample() (Sample, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var s Sample
	b, err := g.procs.Read(&g.buf)
	if err != nil {
		return s, err
	}
	if g.pids, err = ParsePids(b, g.pids[:0]); err != nil {
		return s, err
	}
	s.PIDs = g.pids
	if b, err = g.cpu.Read(&g.buf); err != nil {
		return s, err
	}
	if s.CPUUsageNS, _, err = ParseUint(b); err != nil {
		return s, fmt.Errorf("%s: %w", g.cpu.Path, err)
	}
	if b, err = g.memUse.Read(&g.buf); err != nil {
		return s, err
	}
	if s.MemUsage, _, err = ParseUint(b); err != nil {
		return s, fmt.Errorf("%s: %w", g.memUse.Path, err)
	}
	if b, err = g.memStat.Read(&g.buf); err != nil {
		return s, err
	}
	var v [4]uint64
	found, err := ParseKeyed(b, v1MemKeys, v[:])
	if err != nil {
		return s, fmt.Errorf("%s: %w", g.memStat.Path, err)
	}
	// The total_ keys include child cgroups; prefer them when present.
	s.MemAnon, s.MemInactiveFile = v[2], v[3]
	if found&1 != 0 {
		s.MemAnon = v[0]
	}
	if found&2 != 0 {
		s.MemInactiveFile = v[1]
	}
	return s, nil
}

func (g *v1Group) Limits() (Limits, error) {
	var l Limits
	if g.cpuDir != "" {
		q, qerr := readInt(filepath.Join(g.cpuDir, "cpu.cfs_quota_us"))
		p, perr := readInt(filepath.Join(g.cpuDir, "cpu.cfs_period_us"))
		if err := errors.Join(qerr, perr); err != nil {
			return l, err
		}
		if q > 0 && p > 0 {
			l.CPU = cpuFromQuota(q, uint64(p))
		}
	}
	v, err := readInt(filepath.Join(g.memDir, "memory.limit_in_bytes"))
	if err != nil {
		return l, err
	}
	if v > 0 && v < v1Unlimited {
		l.MemoryBytes = v
	}
	return l, nil
}

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

func (g *v1Group) Signal(sig Signal) error {
	return signalPids(filepath.Join(g.memDir, "cgroup.procs"), sig)
}

func (g *v1Group) Delete(ctx context.Context) error {
	_ = g.Close()
	return removeDirs(ctx, g.dirs, func() { _ = g.Signal(syscall.SIGKILL) })
}

func (g *v1Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.cpu.Close(), g.memUse.Close(), g.memStat.Close(), g.procs.Close())
}
