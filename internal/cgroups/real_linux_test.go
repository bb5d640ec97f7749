//go:build linux

package cgroups_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
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
	var out bytes.Buffer
	cmd := &exec.Cmd{Path: "/bin/cat", Args: []string{"cat", "/proc/self/cgroup"}, Stdout: &out, Stderr: &out}
	if err := g.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v: %s", err, out.String())
	}
	want := "/" + parent + "/llm/place"
	// On v2 the single "0::" line counts; on v1 and hybrid the memory
	// controller's (hybrid also has a controller-less "0::" line).
	ctrl := "memory"
	if m.Mode() == cgroups.ModeV2 {
		ctrl = ""
	}
	var memLine string
	for _, line := range strings.Split(out.String(), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == ctrl {
			memLine = line
		}
	}
	if !strings.HasSuffix(memLine, want) {
		t.Fatalf("worker ran in\n%s\nwant its memory (or v2) cgroup to end in %s", out.String(), want)
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
	cmd := &exec.Cmd{Path: "/bin/sleep", Args: []string{"sleep", "60"}}
	if err := g.Start(cmd); err != nil {
		t.Fatal(err)
	}
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

func TestRealShimReportsExecFailure(t *testing.T) {
	parent := harness.CgroupParent(t)
	m, err := cgroups.New(cgroups.Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Create("llm/bad", cgroups.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Delete(context.Background())
	cmd := &exec.Cmd{Path: "/nonexistent/worker", Args: []string{"worker"}}
	err = g.Start(cmd)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/worker") {
		t.Fatalf("Start of a missing binary = %v, want an error naming it", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
