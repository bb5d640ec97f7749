//go:build linux

package cgroups_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/cgroups"
)

func TestMain(m *testing.M) { harness.Main(m) }

// The worker's first instruction must already run inside its cgroup: a
// worker that prints its own /proc/self/cgroup shows where it ran.
func TestRealPlacementBeforeExec(t *testing.T) {
	parent := harness.CgroupParent(t)
	m, err := cgroups.New(cgroups.Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Create("llm/place", cgroups.Limits{CPU: 150, MemoryBytes: 128 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cmd, outPath := start(t, g, "/bin/cat", "/proc/self/cgroup")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v: %s", err, readOut(t, outPath))
	}
	out := readOut(t, outPath)
	want := "/" + strings.TrimPrefix(parent, "/") + "/llm/place"
	// On v2 the single "0::" line counts; on v1 and hybrid the memory
	// controller's (hybrid also has a controller-less "0::" line).
	ctrl := "memory"
	if m.Mode() == cgroups.ModeV2 {
		ctrl = ""
	}
	var memLine string
	for _, line := range strings.Split(out, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == ctrl {
			memLine = line
		}
	}
	if !strings.HasSuffix(memLine, want) {
		t.Fatalf("worker ran in\n%s\nwant its memory (or v2) cgroup to end in %s", out, want)
	}
	lim, err := g.Limits()
	if err != nil || lim != (cgroups.Limits{CPU: 150, MemoryBytes: 128 << 20}) {
		t.Fatalf("Limits = %+v, %v", lim, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if rels, err := m.List(); err != nil || len(rels) != 0 {
		t.Fatalf("after Delete List = %v, %v", rels, err)
	}
}

func TestRealCreateRefusesBusyCgroup(t *testing.T) {
	parent := harness.CgroupParent(t)
	m, err := cgroups.New(cgroups.Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Create("llm/busy", cgroups.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := start(t, g, "/bin/sleep", "60")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, err := m.Create("llm/busy", cgroups.Limits{}); !errors.Is(err, cgroups.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	// Delete kills what is left and removes the cgroup.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat("/proc/" + itoa(cmd.Process.Pid) + "/stat"); err == nil {
		t.Fatal("process survived Delete")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A worker cgroup holds at most Pids tasks, keeps memory plus swap within
// the memory limit, and Kill empties it at once, forking children and all.
func TestRealPidsLimitSwapAndKill(t *testing.T) {
	parent := harness.CgroupParent(t)
	m, err := cgroups.New(cgroups.Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	lim := cgroups.Limits{MemoryBytes: 64 << 20, Pids: 8}
	g, err := m.Create("llm/bomb", lim)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Delete(context.Background())
	if got, err := g.Limits(); err != nil || got != lim {
		t.Fatalf("Limits = %+v, %v; want %+v", got, err, lim)
	}
	// The swap bound, where the kernel accounts swap.
	swapFile := map[cgroups.Mode]string{cgroups.ModeV1: "memory.memsw.limit_in_bytes", cgroups.ModeHybrid: "memory.memsw.limit_in_bytes", cgroups.ModeV2: "memory.swap.max"}[m.Mode()]
	want := map[cgroups.Mode]string{cgroups.ModeV1: "67108864", cgroups.ModeHybrid: "67108864", cgroups.ModeV2: "0"}[m.Mode()]
	if b, err := os.ReadFile(filepath.Join(memDir(t, m, g), swapFile)); err == nil && strings.TrimSpace(string(b)) != want {
		t.Fatalf("%s = %q, want %s", swapFile, b, want)
	}
	// Fifty forks against a limit of eight: the shell runs out.
	cmd, out := start(t, g, "/bin/sh", "-c", "for i in $(seq 1 50); do sleep 60 & done; wait")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	harness.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(strings.ToLower(readOut(t, out)), "fork") {
			return fmt.Errorf("no fork failed yet: %q", readOut(t, out))
		}
		return nil
	})
	s, err := g.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.PIDs) > 8 || len(s.PIDs) < 2 {
		t.Fatalf("%d tasks in a cgroup with pids.max 8", len(s.PIDs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := g.Sample(); err != nil || len(s.PIDs) != 0 {
		t.Fatalf("after Kill: %v %v", s.PIDs, err)
	}
}

// memDir is g's directory in the memory hierarchy (v2: its only one).
func memDir(t *testing.T, m cgroups.Manager, g cgroups.Group) string {
	t.Helper()
	if m.Mode() == cgroups.ModeV2 {
		return filepath.Join(cgroups.DefaultRoot, g.Path())
	}
	return filepath.Join(cgroups.DefaultRoot, "memory", g.Path())
}
