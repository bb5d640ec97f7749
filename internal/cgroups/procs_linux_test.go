//go:build linux

package cgroups_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/cgroups"
)

// Sample read every 20 ms must see a process that joins the cgroup after
// the first read: on v1 a kept-open cgroup.procs would keep serving the
// first pid list.
func TestRealSampleSeesNewPids(t *testing.T) {
	m, err := cgroups.New(cgroups.Config{Parent: harness.CgroupParent(t)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Create("llm/fork", cgroups.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Delete(context.Background())
	// The shell and one sleep first (2 pids), then the shell and two sleeps.
	cmd, _ := start(t, g, "/bin/sh", "-c", "sleep 0.2; sleep 30 & sleep 30 & wait")
	defer func() { _ = g.Kill(context.Background()); _ = cmd.Wait() }()
	harness.WaitFor(t, 5*time.Second, func() error {
		s, err := g.Sample()
		if err != nil {
			return err
		}
		if len(s.PIDs) < 3 || !slices.Contains(s.PIDs, cmd.Process.Pid) {
			return fmt.Errorf("pids %v, want the shell and its children", s.PIDs)
		}
		return nil
	})
}
