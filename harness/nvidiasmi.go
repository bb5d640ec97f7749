package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbee-dev/rbee/harness/gpufake"
)

// FakeSMI is a fake nvidia-smi installed in its own directory.
type FakeSMI struct {
	// Dir holds the fake as "nvidia-smi", for PATH.
	Dir string
	// Path is the fake's full path, for --nvidia-smi.
	Path string
	t    TB
}

// FakeNvidiaSMI installs a fake nvidia-smi that answers with scenario s
// (see gpufake.H200Busy for the captured host).
func FakeNvidiaSMI(t TB, s gpufake.Scenario) *FakeSMI {
	t.Helper()
	bin := Build(t, "harness/fakesmi")
	dir := t.TempDir()
	path := filepath.Join(dir, "nvidia-smi")
	// A hard link keeps /proc/self/exe inside dir, where the fake looks
	// for its scenario; fall back to a copy across filesystems.
	if err := os.Link(bin, path); err != nil {
		b, rerr := os.ReadFile(bin)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(path, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := &FakeSMI{Dir: dir, Path: path, t: t}
	f.Set(s)
	return f
}

// Set replaces the scenario; the next invocation sees it.
func (f *FakeSMI) Set(s gpufake.Scenario) {
	f.t.Helper()
	if err := gpufake.Save(filepath.Join(f.Dir, gpufake.ScenarioFile), s); err != nil {
		f.t.Fatal(err)
	}
}

// Invocations returns the argument lists of every run so far.
func (f *FakeSMI) Invocations() []string {
	b, err := os.ReadFile(filepath.Join(f.Dir, gpufake.InvocationLog))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// Running returns the pids of fake nvidia-smi processes (and their hanging
// children) still alive, found by their executable.
func (f *FakeSMI) Running() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && exe == f.Path {
			var pid int
			if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
