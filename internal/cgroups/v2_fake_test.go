//go:build linux

package cgroups

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeV2 lays out a cgroup v2 tree in a temp dir the way the kernel of
// ../shared/fixtures/cgroup/v2-gpu-host-probe.txt shows it: all controllers
// enabled at the root, the hive in /sup. Directories a real kernel would
// populate on mkdir are pre-created with their interface files, because a
// plain directory gets none.
type fakeV2 struct {
	root string
}

const allCtrls = "cpuset cpu io memory hugetlb pids"

func newFakeV2(t *testing.T, rootSubtree string) *fakeV2 {
	t.Helper()
	f := &fakeV2{root: t.TempDir()}
	f.cgroupDir(t, "", allCtrls, rootSubtree)
	f.cgroupDir(t, "sup", rootSubtree, "")
	f.write(t, "sup/cgroup.procs", "4242\n")
	return f
}

func (f *fakeV2) cgroupDir(t *testing.T, rel, controllers, subtree string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(f.root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write(t, filepath.Join(rel, "cgroup.controllers"), controllers+"\n")
	f.write(t, filepath.Join(rel, "cgroup.subtree_control"), subtree+"\n")
	f.write(t, filepath.Join(rel, "cgroup.procs"), "")
}

func (f *fakeV2) worker(t *testing.T, rel string) {
	t.Helper()
	f.cgroupDir(t, rel, "cpu io memory pids", "")
	for _, name := range []string{"cpu.stat", "memory.current", "memory.stat", "io.stat", "memory.events"} {
		f.write(t, filepath.Join(rel, name), string(readFixture(t, "v2/"+name)))
	}
	f.write(t, filepath.Join(rel, "cpu.max"), "max 100000\n")
	f.write(t, filepath.Join(rel, "memory.max"), "max\n")
}

func (f *fakeV2) write(t *testing.T, rel, s string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.root, rel), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeV2) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestV2FakeTreeCreateAndSample(t *testing.T) {
	f := newFakeV2(t, allCtrls)
	f.cgroupDir(t, "rbee.slice", "cpu io memory pids", "")
	f.worker(t, "rbee.slice/llm/9301")
	f.cgroupDir(t, "rbee.slice/llm", "cpu io memory pids", "")

	// No systemd, the root offers the controllers: the workers' tree is
	// right below it.
	m, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/sup"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Mode() != ModeV2 || m.Parent() != RootParent || !strings.Contains(m.How(), "below the cgroup root") {
		t.Fatalf("mode %s parent %s (%s)", m.Mode(), m.Parent(), m.How())
	}
	// Controllers were enabled below the root, never at the root nor in
	// the hive's own cgroup.
	if got := f.read(t, "cgroup.subtree_control"); got != allCtrls {
		t.Fatalf("root subtree_control was written: %q", got)
	}
	if got := f.read(t, "sup/cgroup.subtree_control"); got != "" {
		t.Fatalf("the hive's own subtree_control was written: %q", got)
	}
	if got := f.read(t, "rbee.slice/cgroup.subtree_control"); got != "+cpu +memory +io +pids" {
		t.Fatalf("rbee.slice subtree_control = %q", got)
	}

	g, err := m.Create("llm/9301", Limits{CPU: 20, MemoryBytes: 256 << 20, Pids: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := f.read(t, "rbee.slice/llm/9301/cpu.max"); got != "20000 100000" {
		t.Fatalf("cpu.max = %q", got)
	}
	if got := f.read(t, "rbee.slice/llm/9301/memory.max"); got != "268435456" {
		t.Fatalf("memory.max = %q", got)
	}
	if got := f.read(t, "rbee.slice/llm/9301/pids.max"); got != "4096" {
		t.Fatalf("pids.max = %q", got)
	}
	if got := f.read(t, "rbee.slice/llm/cgroup.subtree_control"); got != "+cpu +memory +io +pids" {
		t.Fatalf("group subtree_control = %q", got)
	}
	lim, err := g.Limits()
	if err != nil || lim != (Limits{CPU: 20, MemoryBytes: 256 << 20, Pids: 4096}) {
		t.Fatalf("Limits = %+v, %v", lim, err)
	}

	f.write(t, "rbee.slice/llm/9301/cgroup.procs", "670\n671\n")
	s, err := g.Sample()
	if err != nil {
		t.Fatal(err)
	}
	want := Sample{
		CPUUsageNS: 855000, MemUsage: 237568, MemAnon: 12288000, MemInactiveFile: 3072000,
		Limits: Limits{CPU: 20, MemoryBytes: 256 << 20, Pids: 4096},
		IO:     IOCounters{ReadBytes: 12288, WriteBytes: 5242880}, HasIO: true, PIDs: []int{670, 671},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("Sample = %+v\nwant     %+v", s, want)
	}
	// A second read through the same descriptors sees new contents.
	f.write(t, "rbee.slice/llm/9301/cpu.stat", "usage_usec 2000855\n")
	f.write(t, "rbee.slice/llm/9301/cgroup.procs", "670\n")
	if s, err = g.Sample(); err != nil || s.CPUUsageNS != 2000855000 || !slices.Equal(s.PIDs, []int{670}) {
		t.Fatalf("second Sample = %+v, %v", s, err)
	}
	// A limit changed behind the hive's back shows within LimitsEvery
	// samples, and Limits reads it at once.
	f.write(t, "rbee.slice/llm/9301/memory.max", "max\n")
	f.write(t, "rbee.slice/llm/9301/cpu.max", "max 100000\n")
	if l, err := g.Limits(); err != nil || l != (Limits{Pids: 4096}) {
		t.Fatalf("Limits after the limits were lifted = %+v, %v", l, err)
	}
	for i := 2; i < LimitsEvery; i++ {
		if s, err = g.Sample(); err != nil || s.Limits != want.Limits {
			t.Fatalf("Sample %d = %+v, %v: limits read before they were due", i+1, s.Limits, err)
		}
	}
	if s, err = g.Sample(); err != nil || s.Limits != (Limits{Pids: 4096}) {
		t.Fatalf("Sample %d, after the limits were lifted = %+v, %v", LimitsEvery+1, s.Limits, err)
	}
	if n, exact, err := g.OOMKills(); n != 2 || !exact || err != nil {
		t.Fatalf("OOMKills = %d %v %v", n, exact, err)
	}
	if rels, err := m.List(); err != nil || !slices.Equal(rels, []string{"llm/9301"}) {
		t.Fatalf("List = %v, %v", rels, err)
	}
}

func TestV2FakeTreeMissingFileIsAnError(t *testing.T) {
	f := newFakeV2(t, allCtrls)
	f.cgroupDir(t, "rbee.slice", "cpu io memory pids", "")
	f.worker(t, "rbee.slice/llm/1")
	m, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/sup"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Open("llm/1")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := os.Remove(filepath.Join(f.root, "rbee.slice/llm/1/memory.stat")); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Sample(); err == nil || !strings.Contains(err.Error(), "memory.stat") {
		t.Fatalf("Sample with memory.stat gone: %v, want an error naming it", err)
	}
}

func TestV2FakeTreeRootWithoutControllers(t *testing.T) {
	// The root delegates only memory: the hive must not write the root's
	// subtree_control, must not enable cpu anywhere, and must refuse a CPU
	// limit with a reason while still allowing memory limits.
	f := newFakeV2(t, "memory")
	f.cgroupDir(t, "rbee.slice", "memory", "")
	f.cgroupDir(t, "rbee.slice/llm", "memory", "")
	f.worker(t, "rbee.slice/llm/a")
	// Without cpu at the root there is no place chosen for the hive...
	if _, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/sup"}}); err == nil ||
		!strings.Contains(err.Error(), "echo +cpu +memory +io +pids >") {
		t.Fatalf("New without cpu at the root: %v, want the fix named", err)
	}
	// A container's namespace root with its processes in it (the hive
	// among them): the write would fail with EBUSY, so the fix named is
	// docker-in-docker's, for both ways of placing.
	f.write(t, "cgroup.procs", "1\n4242\n")
	if _, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/"}}); err == nil ||
		!strings.Contains(err.Error(), "holds processes (this container's)") || !strings.Contains(err.Error(), "/init/cgroup.procs") {
		t.Fatalf("New in a container's root: %v, want the move into a child named", err)
	}
	if _, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/"}, Parent: RootParent}); err == nil ||
		!strings.Contains(err.Error(), "the root of this cgroup namespace") {
		t.Fatalf("--cgroup-parent in a container's root: %v, want the move into a child named", err)
	}
	f.write(t, "cgroup.procs", "")
	// ...but a parent given gets what the root offers.
	m, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/sup"}, Parent: RootParent})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.read(t, "cgroup.subtree_control"); got != "memory" {
		t.Fatalf("root subtree_control = %q", got)
	}
	if got := f.read(t, "rbee.slice/cgroup.subtree_control"); got != "+memory" {
		t.Fatalf("rbee.slice subtree_control = %q", got)
	}
	if _, err := m.Create("llm/a", Limits{CPU: 50}); err == nil || !strings.Contains(err.Error(), "cpu controller") {
		t.Fatalf("Create with CPU limit: %v, want cpu controller error", err)
	}
	g, err := m.Create("llm/a", Limits{MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
}

func TestV2FakeTreeRefusesBadPaths(t *testing.T) {
	f := newFakeV2(t, allCtrls)
	f.cgroupDir(t, "rbee.slice", "cpu io memory pids", "")
	m, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/sup"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"../x", "llm/..", "llm", "llm/a/b", "/etc", "llm/a b"} {
		if _, err := m.Create(rel, Limits{}); err == nil {
			t.Errorf("Create(%q) succeeded", rel)
		}
		if _, err := m.Open(rel); err == nil {
			t.Errorf("Open(%q) succeeded", rel)
		}
	}
	for _, parent := range []string{"../../etc", "/", "a/../../b", "rbee.slice", "/sup", "/sup/workers"} {
		if _, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/sup"}, Parent: parent}); err == nil {
			t.Errorf("New(Parent %q) succeeded", parent)
		}
	}
}

// On a systemd host the workers' tree is a delegated scope: started with
// a keeper process, which moves into a leaf of its own so the scope can
// delegate; an earlier hive's scope is taken as it is; Release stops the
// keeper once no worker is left, which ends the scope.
func TestV2SystemdScope(t *testing.T) {
	f := newFakeV2(t, allCtrls)
	sd := &fakeSystemd{f: f, t: t}
	var keepers []*os.Process
	keeper := func() (*os.Process, error) {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		keepers = append(keepers, cmd.Process)
		return cmd.Process, nil
	}
	t.Cleanup(func() {
		for _, p := range keepers {
			p.Kill()
			p.Wait()
		}
	})
	cfg := Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/sup"}, Systemd: sd, Keeper: keeper}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	scope := "rbee.slice/rbee-workers.scope"
	if m.Parent() != "/"+scope || !strings.Contains(m.How(), "systemd") || sd.started != 1 || len(keepers) != 1 {
		t.Fatalf("parent %s (%s), %d scopes started, %d keepers", m.Parent(), m.How(), sd.started, len(keepers))
	}
	if got := f.read(t, scope+"/"+keeperLeaf+"/cgroup.procs"); got != strconv.Itoa(keepers[0].Pid) {
		t.Fatalf("keeper leaf holds %q, want the keeper %d", got, keepers[0].Pid)
	}
	if got := f.read(t, scope+"/cgroup.subtree_control"); got != "+cpu +memory +io +pids" {
		t.Fatalf("scope subtree_control = %q", got)
	}
	if got := f.read(t, "sup/cgroup.subtree_control"); got != "" {
		t.Fatalf("the hive's own subtree_control was written: %q", got)
	}
	// A second hive (after a restart) finds the scope running with its
	// keeper: nothing new is started.
	m2, err := New(cfg)
	if err != nil || m2.Parent() != m.Parent() || sd.started != 1 || len(keepers) != 1 {
		t.Fatalf("second New: %v, %d scopes started, %d keepers", err, sd.started, len(keepers))
	}
	// A worker holds the scope; without it Release ends the keeper.
	f.cgroupDir(t, scope+"/llm", "cpu io memory pids", "")
	f.worker(t, scope+"/llm/a")
	if err := m.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := keepers[0].Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("Release stopped the keeper while a worker lives: %v", err)
	}
	for _, d := range []string{"llm/a", "llm"} {
		if err := os.RemoveAll(filepath.Join(f.root, scope, d)); err != nil {
			t.Fatal(err)
		}
	}
	// The fake's procs files are plain: the kernel would empty the leaf.
	f.write(t, scope+"/"+keeperLeaf+"/cgroup.procs", "")
	if err := m.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := keepers[0].Signal(syscall.Signal(0)); err == nil {
		t.Fatal("Release left the keeper running with no worker")
	}
}

// The scope's keeper killed behind the hive's back (the scope then ends
// with its last worker): the next spawns make it whole again, once,
// however many come at once.
func TestV2SystemdScopeKeeperGone(t *testing.T) {
	f := newFakeV2(t, allCtrls)
	sd := &fakeSystemd{f: f, t: t}
	var mu sync.Mutex
	var keepers []*os.Process
	keeper := func() (*os.Process, error) {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		mu.Lock()
		keepers = append(keepers, cmd.Process)
		mu.Unlock()
		return cmd.Process, nil
	}
	t.Cleanup(func() {
		for _, p := range keepers {
			p.Kill()
			p.Wait()
		}
	})
	m, err := New(Config{Root: f.root, Mode: ModeV2, Self: map[string]string{"": "/sup"}, Systemd: sd, Keeper: keeper})
	if err != nil {
		t.Fatal(err)
	}
	scope := "rbee.slice/rbee-workers.scope"
	// The keeper is killed (the fake's leaf empties as the kernel's would).
	keepers[0].Kill()
	keepers[0].Wait()
	f.write(t, scope+"/"+keeperLeaf+"/cgroup.procs", "")
	f.write(t, scope+"/cgroup.procs", "")
	f.cgroupDir(t, scope+"/llm", "cpu io memory pids", "") // the kernel's files
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Go(func() {
			g, err := m.Create(fmt.Sprintf("llm/w%d", i), Limits{MemoryBytes: 64 << 20})
			if err == nil {
				g.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keepers) != 2 {
		t.Fatalf("%d keepers started for 4 spawns after the first was killed, want 1 more", len(keepers)-1)
	}
	if got := f.read(t, scope+"/"+keeperLeaf+"/cgroup.procs"); got != strconv.Itoa(keepers[1].Pid) {
		t.Fatalf("keeper leaf holds %q, want the new keeper %d", got, keepers[1].Pid)
	}
}

// fakeSystemd starts the scope in a fake tree as systemd would: its
// cgroup made, the keeper's pid put in it.
type fakeSystemd struct {
	f       *fakeV2
	t       *testing.T
	started int
}

func (s *fakeSystemd) Scope(_ context.Context, slice, unit string, keeper func() (int, error)) (string, error) {
	cg := "/" + slice + "/" + unit
	if _, err := os.Stat(filepath.Join(s.f.root, cg)); err == nil {
		return cg, nil
	}
	pid, err := keeper()
	if err != nil {
		return "", err
	}
	s.started++
	s.f.cgroupDir(s.t, slice, "cpu io memory pids", "cpu io memory pids")
	s.f.cgroupDir(s.t, slice+"/"+unit, "cpu io memory pids", "")
	s.f.write(s.t, slice+"/"+unit+"/cgroup.procs", strconv.Itoa(pid)+"\n")
	return cg, nil
}
