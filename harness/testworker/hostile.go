package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rbee-dev/rbee/internal/procfs"
)

// hostile tries what a compromised worker would, and prints one line per
// attempt, "hostile <what>: ok" or "hostile <what>: refused: <error>", so
// a test can check that every attempt failed:
//
//   - raise its own memory limit;
//   - move itself out of its cgroup, to the cgroup root and to the
//     parent of its cgroup (where the hive's workers live);
//   - fork more processes than its pids limit allows (forks children,
//     which stay until the worker ends);
//   - signal pid 1.
func hostile(forks int) []*exec.Cmd {
	cg, mem := ownCgroup()
	report := func(what string, err error) {
		if err != nil {
			fmt.Printf("hostile %s: refused: %v\n", what, err)
			return
		}
		fmt.Printf("hostile %s: ok\n", what)
	}
	if mem == "" {
		fmt.Println("hostile cgroup: unknown (no cgroup found in /proc/self/cgroup)")
	} else {
		limit := filepath.Join(mem, "memory.limit_in_bytes")
		if cg == "v2" {
			limit = filepath.Join(mem, "memory.max")
		}
		report("raise-memory-limit", os.WriteFile(limit, []byte("max"), 0))
		if cg != "v2" {
			report("raise-memory-limit-bytes", os.WriteFile(limit, []byte("9223372036854771712"), 0))
		}
		pid := []byte(strconv.Itoa(os.Getpid()))
		root := filepath.Join(mem[:strings.Index(mem, "/fs/cgroup")+len("/fs/cgroup")], map[string]string{"v2": "", "v1": "memory"}[cg])
		report("escape-to-root", os.WriteFile(filepath.Join(root, "cgroup.procs"), pid, 0))
		report("escape-to-parent", os.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(mem)), "cgroup.procs"), pid, 0))
	}
	var kids []*exec.Cmd
	var forkErr error
	for range forks {
		c := exec.Command("/bin/sleep", "3600")
		if err := c.Start(); err != nil {
			forkErr = err
			break
		}
		kids = append(kids, c)
	}
	fmt.Printf("hostile forked %d of %d\n", len(kids), forks)
	if forks > 0 {
		if forkErr == nil {
			report("fork-past-limit", nil)
		} else {
			report("fork-past-limit", forkErr)
		}
	}
	report("signal-init", syscall.Kill(1, syscall.SIGTERM))
	return kids
}

// ownCgroup returns the layout ("v1" or "v2") and the directory of this
// process's memory cgroup.
func ownCgroup() (layout, dir string) {
	self, err := procfs.SelfCgroups()
	if err != nil {
		return "", ""
	}
	if p, ok := self["memory"]; ok {
		return "v1", filepath.Join("/sys/fs/cgroup/memory", p)
	}
	if p, ok := self[""]; ok {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			return "v2", filepath.Join("/sys/fs/cgroup", p)
		}
	}
	return "", ""
}
