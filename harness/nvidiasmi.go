package harness

import (
	"bytes"
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
	bin  string // the fakesmi binary the script execs, shared by every fake
	t    TB
}

// FakeNvidiaSMI installs a fake nvidia-smi that answers with scenario s
// (see gpufake.H200Busy for the captured host).
func FakeNvidiaSMI(t TB, s gpufake.Scenario) *FakeSMI {
	t.Helper()
	bin := Build(t, "harness/fakesmi")
	dir := t.TempDir()
	path := filepath.Join(dir, "nvidia-smi")
	// nvidia-smi is a two-line script that names the scenario and the
	// invocation log of this fake and runs the one fake binary in place
	// (exec keeps the pid, so a hung one is killed like the real one).
	script := fmt.Sprintf("#!/bin/sh\n%s=%s %s=%s exec %s \"$@\"\n",
		gpufake.EnvScenario, shellQuote(filepath.Join(dir, gpufake.ScenarioFile)),
		gpufake.EnvLog, shellQuote(filepath.Join(dir, gpufake.InvocationLog)), shellQuote(bin))
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &FakeSMI{Dir: dir, Path: path, bin: bin, t: t}
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

// Running returns the pids of this fake's nvidia-smi processes (and their
// hanging children) still alive: the fakesmi binary (the script execs
// it, so the executable is never the script) with this fake's scenario
// in its environment.
func (f *FakeSMI) Running() []int {
	var pids []int
	mine := []byte(gpufake.EnvScenario + "=" + filepath.Join(f.Dir, gpufake.ScenarioFile) + "\x00")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || exe != f.bin {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, mine) {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
