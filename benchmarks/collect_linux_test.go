//go:build linux

package benchmarks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func TestMain(m *testing.M) { harness.Main(m) }

// BenchmarkCollection10Workers is one collection pass over 10 idle
// workers, each in its own cgroup (seed target: < 10 ms).
func BenchmarkCollection10Workers(b *testing.B) {
	f := startFleet(b, 10, false)
	for b.Loop() {
		f.pass(b)
	}
}

// BenchmarkStress100Workers is one collection pass over 100 workers that
// burn CPU and hold memory (seed target: < 1 s). In the same loop, timed
// apart, it reads the same files as BenchmarkCollectionFloor100 does and
// runs containerd/cgroups' Stat on every cgroup, and reports the ratios:
// floor-x (pass / floor; ours: ≤ 2) and containerd-x (containerd / pass;
// ours: ≥ 15). Noise hits the three alike, so the ratios hold where the
// absolute times do not.
func BenchmarkStress100Workers(b *testing.B) {
	passVersus(b, startFleet(b, 100, true))
}

// BenchmarkCollection100Workers is BenchmarkStress100Workers over 100
// sleeping workers: the same ratios on a quiet machine.
func BenchmarkCollection100Workers(b *testing.B) {
	passVersus(b, startFleet(b, 100, false))
}

// passVersus times f's pass, and apart from it the floor and containerd's
// Stat over the same cgroups, and reports the ratios.
func passVersus(b *testing.B, f *fleet) {
	floor := f.floor(b)
	stat := containerdStat(b, f.parent, f.rels)
	var pass, fl, cs time.Duration
	for b.Loop() {
		t0 := time.Now()
		f.pass(b)
		t1 := time.Now()
		b.StopTimer()
		if err := floor(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := stat(); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		b.StartTimer()
		pass, fl, cs = pass+t1.Sub(t0), fl+t2.Sub(t1), cs+t3.Sub(t2)
	}
	b.ReportMetric(float64(fl.Microseconds())/float64(b.N)/1000, "floor-ms")
	b.ReportMetric(float64(cs.Microseconds())/float64(b.N)/1000, "containerd-ms")
	b.ReportMetric(pass.Seconds()/fl.Seconds(), "floor-x")
	b.ReportMetric(cs.Seconds()/pass.Seconds(), "containerd-x")
}

// BenchmarkCollectionFloor100 is what a pass over 100 workers cannot go
// below: one pread per file the pass reads, on descriptors held open
// (cgroup.procs is opened afresh each time, as the kernel requires; see
// reread.File), with no parsing and no records.
func BenchmarkCollectionFloor100(b *testing.B) {
	f := startFleet(b, 100, false)
	floor := f.floor(b)
	for b.Loop() {
		if err := floor(); err != nil {
			b.Fatal(err)
		}
	}
}

// fleet is n workers, each in its own cgroup below a fresh parent.
type fleet struct {
	m      *monitor.Monitor
	parent string
	rels   []string // each worker's cgroup below the parent
	n      int
}

// startFleet starts n workers: sleeping, or with load test workers that
// burn 0.5 % of a core each and hold 8 MiB.
func startFleet(b *testing.B, n int, load bool) *fleet {
	b.Helper()
	parent := harness.CgroupParent(b)
	p := monitor.DetectPlatform(cgroups.Config{Parent: parent})
	if p.Cgroups == nil {
		harness.Cannot(b, "cgroups: %s", p.NoCgroupsReason)
	}
	m := monitor.New(monitor.Config{Platform: p, StopGrace: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.StopAll(ctx); err != nil {
			b.Error(err)
		}
		m.Close()
	})
	bin, args := "/bin/sleep", []string{"3600"}
	if load {
		bin, args = harness.TestWorker(b), []string{"--cpu", "0.5", "--mem", "8Mi", "--model", "bench"}
	}
	f := &fleet{m: m, parent: parent, n: n}
	for i := range n {
		inst := fmt.Sprintf("w%03d", i)
		if _, err := m.Spawn(context.Background(), api.SpawnRequest{Group: "bench", Instance: inst, Binary: bin, Args: args, MemoryLimit: "64Mi", CPULimit: "50%"}); err != nil {
			b.Fatal(err)
		}
		f.rels = append(f.rels, "bench/"+inst)
	}
	// Two passes: the first opens every descriptor, the second has rates.
	f.pass(b)
	f.pass(b)
	return f
}

// pass runs one collection pass and checks it read every worker cleanly.
func (f *fleet) pass(b *testing.B) {
	recs := f.m.Collect(context.Background())
	if len(recs) != f.n {
		b.Fatalf("pass returned %d records, want %d", len(recs), f.n)
	}
	for _, r := range recs {
		if len(r.Errors) > 0 || r.MemBytes == nil || len(r.PIDs) == 0 {
			b.Fatalf("worker %s: errors %v, mem %v, pids %v", r.ID, r.Errors, r.MemBytes, r.PIDs)
		}
	}
}

// floor returns a function that reads, with one pread each, the files
// the monitor holds open after a pass (found in /proc/self/fd, so the
// floor follows whatever the pass reads), plus each worker's cgroup.procs
// opened afresh.
func (f *fleet) floor(b *testing.B) func() error {
	b.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	var fds, limitFDs []int
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || !(strings.Contains(target, f.parent) || strings.HasPrefix(target, "/proc/") && !strings.HasPrefix(target, "/proc/self")) {
			continue
		}
		fd, err := unix.Open(filepath.Join("/proc/self/fd", e.Name()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // the pass's own descriptor may be write-only or gone
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			unix.Close(fd) // a directory the pass opens files in
			continue
		}
		if limitFiles[filepath.Base(target)] {
			limitFDs = append(limitFDs, fd)
		} else {
			fds = append(fds, fd)
		}
	}
	b.Cleanup(func() {
		for _, fd := range append(fds, limitFDs...) {
			unix.Close(fd)
		}
	})
	// The pass reads at least 4 files a worker (pids, CPU, memory, its
	// statistics); fewer found means the discovery above is broken.
	if len(fds) < 4*f.n {
		b.Fatalf("found %d open kernel files for %d workers", len(fds), f.n)
	}
	// cgroup.procs is opened afresh each pass, through its directory.
	var procs []int
	for _, rel := range f.rels {
		dir, err := unix.Open(filepath.Dir(procsFile(b, f.parent, rel)), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		procs = append(procs, dir)
	}
	b.Cleanup(func() {
		for _, fd := range procs {
			unix.Close(fd)
		}
	})
	if os.Getenv("RBEE_BENCH_DEBUG") != "" {
		for _, e := range ents {
			t, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
			b.Log(t)
		}
	}
	b.Logf("floor: %d open files, %d limit files every %d passes, and %d cgroup.procs for %d workers", len(fds), len(limitFDs), cgroups.LimitsEvery, len(procs), f.n)
	buf := make([]byte, 8192)
	calls := 0
	return func() error {
		read := fds
		if calls%cgroups.LimitsEvery == 0 {
			read = append(read[:len(read):len(read)], limitFDs...)
		}
		calls++
		for _, fd := range read {
			if _, err := unix.Pread(fd, buf, 0); err != nil {
				return err
			}
		}
		for _, dir := range procs {
			fd, err := unix.Openat(dir, "cgroup.procs", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			_, err = unix.Pread(fd, buf, 0)
			unix.Close(fd)
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// limitFiles are the files a pass reads every cgroups.LimitsEvery passes.
var limitFiles = map[string]bool{
	"cpu.cfs_quota_us": true, "cpu.cfs_period_us": true, "memory.limit_in_bytes": true, "pids.max": true, // v1
	"cpu.max": true, "memory.max": true, // v2
}

// procsFile is the cgroup.procs file the pass reads for the worker
// cgroup rel: on v1, the memory controller's.
func procsFile(b *testing.B, parent, rel string) string {
	m, err := cgroups.New(cgroups.Config{Parent: parent})
	if err != nil {
		b.Fatal(err)
	}
	g, err := m.Open(rel)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	pl, err := g.Placement()
	if err != nil {
		b.Fatal(err)
	}
	if pl.Dir != nil {
		defer pl.Dir.Close()
		return filepath.Join(pl.Dir.Name(), "cgroup.procs")
	}
	for _, p := range pl.Procs {
		if strings.Contains(p, "/memory/") {
			return p
		}
	}
	b.Fatalf("no memory controller among %v", pl.Procs)
	return ""
}

// containerdStat returns a function reading every cgroup with the
// library's full Stat.
func containerdStat(b *testing.B, parent string, rels []string) func() error {
	if cgroups.Detect(cgroups.DefaultRoot) == cgroups.ModeV2 {
		m, err := cgroups.New(cgroups.Config{Parent: parent})
		if err != nil {
			b.Fatal(err)
		}
		var gs []*cgroup2.Manager
		for _, rel := range rels {
			g, err := cgroup2.Load(filepath.Join(m.Parent(), rel))
			if err != nil {
				b.Fatal(err)
			}
			gs = append(gs, g)
		}
		return func() error {
			for _, g := range gs {
				if _, err := g.Stat(); err != nil {
					return err
				}
			}
			return nil
		}
	}
	var gs []cgroup1.Cgroup
	for _, rel := range rels {
		g, err := cgroup1.Load(cgroup1.NestedPath(filepath.Join(parent, rel)))
		if err != nil {
			b.Fatal(err)
		}
		gs = append(gs, g)
	}
	return func() error {
		for _, g := range gs {
			if _, err := g.Stat(cgroup1.IgnoreNotExist); err != nil {
				return err
			}
		}
		return nil
	}
}
