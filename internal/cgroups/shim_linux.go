package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// On cgroup v1 there is no clone-into-cgroup, so the worker is started as
// a re-execution of the hive's own binary (the shim) that writes its pid
// into every controller's cgroup.procs and then execs the worker in place.
// The worker's code therefore never runs outside its cgroup, and its pid is
// the shim's pid. The shim reports failure over a close-on-exec pipe: EOF
// with no bytes means the exec happened.

// shimEnv marks a process as the shim; it is removed before the exec, so
// workers never see it.
const shimEnv = "_RBEE_CGROUP_SHIM"

// shimArg0 is the shim's argv[0], so it is recognisable in ps.
const shimArg0 = "rbee-cgroup-shim"

// Every binary that links this package can act as the shim: the check runs
// before main, and costs one getenv in every other process.
func init() {
	if os.Getenv(shimEnv) == "1" && len(os.Args) > 0 && os.Args[0] == shimArg0 {
		os.Exit(runShim(os.Args[1:]))
	}
}

// runShim: args are N, N cgroup.procs paths, the worker path, its argv.
func runShim(args []string) int {
	status := os.NewFile(3, "shim-status")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(status, format, a...)
		return 127
	}
	if len(args) < 1 {
		return fail("shim: no arguments")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 || len(args) < 1+n+2 {
		return fail("shim: bad arguments")
	}
	procs, path, argv := args[1:1+n], args[1+n], args[2+n:]
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, p := range procs {
		if err := os.WriteFile(p, pid, 0); err != nil {
			return fail("join cgroup: %v", err)
		}
	}
	if err := os.Unsetenv(shimEnv); err != nil {
		return fail("shim: %v", err)
	}
	unix.CloseOnExec(3)
	err = unix.Exec(path, argv, os.Environ())
	return fail("exec %s: %v", path, err)
}

// startViaShim starts cmd through the shim, which joins procsFiles first.
// cmd is rewritten to run the shim, so cmd.Wait and cmd.Process work as
// usual and refer to the worker once it has exec'd.
func startViaShim(cmd *exec.Cmd, procsFiles []string) error {
	if len(cmd.ExtraFiles) > 0 {
		return errors.New("start via cgroup shim: ExtraFiles are not supported")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("shim pipe: %w", err)
	}
	defer r.Close()
	worker, argv := cmd.Path, cmd.Args
	if len(argv) == 0 {
		argv = []string{worker}
	}
	args := append([]string{shimArg0, strconv.Itoa(len(procsFiles))}, procsFiles...)
	args = append(args, worker)
	cmd.Args = append(args, argv...)
	cmd.Path = "/proc/self/exe"
	cmd.Env = append(withoutShimEnv(envOf(cmd)), shimEnv+"=1")
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start cgroup shim for %s: %w", worker, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(r, 4096))
	if len(msg) > 0 {
		_ = cmd.Wait()
		return fmt.Errorf("start %s: %s", worker, msg)
	}
	return nil
}

func envOf(cmd *exec.Cmd) []string {
	if cmd.Env != nil {
		return cmd.Env
	}
	return os.Environ()
}

func withoutShimEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, shimEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}
