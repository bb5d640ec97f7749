package launch

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// The keeper is the hive's own binary re-executed to hold the systemd
// scope the workers' cgroups live in: a scope exists only while it holds
// a process, and the workers come and go. It sleeps, with no_new_privs,
// until it is killed or sent SIGTERM. It keeps the hive's user (root), as
// a user no worker runs as: a worker (nobody by default) could otherwise
// signal it, or ptrace it and fork from it in the keeper's leaf, which
// has no limits; and it is not dumpable, so no one but root may attach
// to it or read its memory.
const keeperArg0 = "rbee-cgroup-keeper"

func init() {
	if os.Getenv(shimEnv) == "keeper" && len(os.Args) == 1 && os.Args[0] == keeperArg0 {
		runKeeper()
	}
}

func runKeeper() {
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	_ = unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGPIPE)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
	os.Exit(0)
}

// StartKeeper starts a keeper process, in a session of its own so that
// it outlives the hive, and returns it; the caller moves it where it
// keeps something alive.
func StartKeeper() (*os.Process, error) {
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{keeperArg0},
		// One thread of Go's runtime is all it needs.
		Env:         []string{shimEnv + "=keeper", "GOMAXPROCS=1"},
		Dir:         "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the cgroup keeper: %w", err)
	}
	return cmd.Process, nil
}
