//go:build linux

package cgroups_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/launch"
)

// start runs argv inside g the way the hive does (through the launch
// shim, as the test's own user), with stdout and stderr in the returned
// file's path.
func start(t *testing.T, g cgroups.Group, argv ...string) (*exec.Cmd, string) {
	t.Helper()
	exe, err := launch.OpenBinary(argv[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	pl, err := g.Placement()
	if err != nil {
		t.Fatal(err)
	}
	if pl.Dir != nil {
		defer pl.Dir.Close()
	}
	outPath := filepath.Join(t.TempDir(), "out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd, err := launch.Start(launch.Spec{Exe: exe, Argv: argv, Env: []string{"PATH=/usr/bin:/bin"},
		CgroupFD: pl.Dir, JoinProcs: pl.Procs, Stdout: out, Stderr: out})
	if err != nil {
		t.Fatal(err)
	}
	return cmd, outPath
}

func readOut(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
