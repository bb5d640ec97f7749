//go:build linux

package integration

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/procfs"
)

// cgroupDirs returns the directories of cgroup path rel (a hive's
// --cgroup-parent, or below it) in every hierarchy: the one on v2 (rel is
// absolute there), each controller's below this process's own cgroup on
// v1 and hybrid.
func cgroupDirs(t *testing.T, rel string) []string {
	t.Helper()
	if cgroups.Detect(cgroups.DefaultRoot) == cgroups.ModeV2 {
		return []string{filepath.Join(cgroups.DefaultRoot, rel)}
	}
	self, err := procfs.SelfCgroups()
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for ctrl, own := range self {
		if ctrl == "" || filepath.Base(ctrl) != ctrl || ctrl[0] == '.' || len(ctrl) > 5 && ctrl[:5] == "name=" {
			continue // the unified tree of a hybrid host, and named hierarchies: no controllers of workers
		}
		dirs = append(dirs, filepath.Join(cgroups.DefaultRoot, ctrl, own, rel))
	}
	slices.Sort(dirs)
	return dirs
}

// existing returns those of dirs that exist.
func existing(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// A hive that exits leaves only the cgroups of the workers still running,
// and, once none is, nothing: before, SIGTERM left the empty parent
// directories in five v1 controllers (issue 21).
func TestHiveExitLeavesNoEmptyCgroups(t *testing.T) {
	harness.RequireCgroups(t)
	parent := harness.CgroupParent(t)
	hive := harness.StartHive(t, harness.HiveOptions{CgroupParent: parent})
	llm := spawn(t, hive, "1", api.SpawnRequest{Group: "llm", Args: []string{"--model", "m"}})
	emb := spawn(t, hive, "1", api.SpawnRequest{Group: "emb", Args: []string{"--model", "e"}})
	if len(existing(cgroupDirs(t, parent))) == 0 {
		t.Fatalf("the hive made no cgroup at %s (looked in %v)", parent, cgroupDirs(t, parent))
	}
	if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+emb.ID, nil); code != 200 {
		t.Fatalf("stop %s: %d %s", emb.ID, code, body)
	}
	hive.Stop() // SIGTERM; workers are left running by default

	if left := existing(cgroupDirs(t, filepath.Join(parent, "emb"))); len(left) > 0 {
		t.Errorf("the stopped worker's group is left: %v", left)
	}
	if left := existing(cgroupDirs(t, filepath.Join(parent, "llm", "1"))); len(left) == 0 {
		t.Errorf("the running worker's cgroup %s is gone from every hierarchy", llm.Cgroup)
	}

	// The next hive adopts llm-1; once it is stopped and that hive exits,
	// nothing of the parent is left in any hierarchy.
	hive.Restart()
	if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+llm.ID, nil); code != 200 {
		t.Fatalf("stop adopted %s: %d %s", llm.ID, code, body)
	}
	hive.Stop()
	if left := existing(cgroupDirs(t, parent)); len(left) > 0 {
		t.Errorf("the hive left empty cgroups behind: %v", left)
	}
}
