// Command cgexec runs a command alone in a new cgroup right below the
// cgroup v2 root and removes that cgroup afterwards:
//
//	cgexec NAME -- COMMAND [ARGS...]
//
// The GPU bundle runs each test binary through it, so that no test shares
// a cgroup with processes of the machine it runs on: the caller's own
// cgroup may hold other processes (a login shell, a job runner), and a
// cgroup below it could then get no controllers. The command is cloned
// straight into the new cgroup (CLONE_INTO_CGROUP). Without cgroup v2 it
// runs the command in place. Its exit status is the command's.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/ids"
)

func main() {
	if len(os.Args) < 4 || os.Args[2] != "--" {
		fmt.Fprintln(os.Stderr, "usage: cgexec NAME -- COMMAND [ARGS...]")
		os.Exit(2)
	}
	name, argv := os.Args[1], os.Args[3:]
	if err := ids.ValidName(name); err != nil {
		fmt.Fprintf(os.Stderr, "cgexec: name %s: %v\n", ids.Quote(name), err)
		os.Exit(2)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	dir, err := childCgroup(name)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "cgexec: %v; running in place\n", err)
	case dir != "":
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cgexec: open %s: %v\n", dir, err)
			os.Exit(1)
		}
		defer unix.Close(fd)
		defer os.Remove(dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	case err != nil:
		fmt.Fprintf(os.Stderr, "cgexec: %v\n", err)
		os.Exit(1)
	}
}

// childCgroup creates /rbee-run-<name> below the v2 root and returns
// its directory, or "" when the host has no cgroup v2 hierarchy.
func childCgroup(name string) (string, error) {
	if cgroups.Detect(cgroups.DefaultRoot) != cgroups.ModeV2 {
		return "", nil
	}
	dir := filepath.Join(cgroups.DefaultRoot, "rbee-run-"+name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	return dir, nil
}
