package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Tree returns pid and its descendants (children, grandchildren, …),
// breadth first, at most max of them: the processes of a worker that runs
// without a cgroup, whose CUDA context or load may live in a child (vLLM
// does so). Each is read from /proc/<pid>/task/<tid>/children of every
// thread, as any thread may have forked; where the kernel has no children
// files (CONFIG_PROC_CHILDREN), from the parent pid of every process. A
// process that left the tree (a daemon that forked twice and whose
// parent exited) is not in it: only a cgroup holds such a process.
// A pid that is gone returns fs.ErrNotExist.
func (fsys *FS) Tree(pid, max int) ([]int, error) {
	if _, err := os.Stat(fsys.Path(pid, "task")); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	out := []int{pid}
	seen := map[int]bool{pid: true}
	for i := 0; i < len(out) && len(out) < max; i++ {
		kids, err := fsys.children(out[i])
		if errors.Is(err, errNoChildrenFiles) {
			return fsys.treeByScan(pid, max)
		}
		if err != nil {
			continue // exited while we walked
		}
		for _, k := range kids {
			if !seen[k] && len(out) < max {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out, nil
}

var errNoChildrenFiles = errors.New("no /proc/<pid>/task/<tid>/children")

// children lists pid's children from the children file of each of its
// threads.
func (fsys *FS) children(pid int) ([]int, error) {
	tasks, err := os.ReadDir(fsys.Path(pid, "task"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(fsys.Path(pid, "task"), t.Name(), "children"))
		if errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(filepath.Join(fsys.Path(pid, "task"), t.Name())); derr == nil {
				return nil, errNoChildrenFiles
			}
			continue // the thread ended
		}
		if err != nil {
			continue
		}
		if out, err = ParsePidList(b, out); err != nil {
			return nil, fmt.Errorf("children of %d: %w", pid, err)
		}
	}
	return out, nil
}

// treeByScan finds pid's descendants from the parent pid in every
// process's stat line.
func (fsys *FS) treeByScan(pid, max int) ([]int, error) {
	ents, err := os.ReadDir(fsys.Root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", fsys.Root, err)
	}
	kids := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := fsys.Stat(p)
		if err != nil {
			continue
		}
		kids[st.PPID] = append(kids[st.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out) && len(out) < max; i++ {
		for _, k := range kids[out[i]] {
			if len(out) < max {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// ParsePidList appends the pids of a space-separated list (a children
// file) to dst.
func ParsePidList(b []byte, dst []int) ([]int, error) {
	for _, f := range bytes.Fields(b) {
		n, err := strconv.Atoi(string(f))
		if err != nil || n <= 0 {
			return dst, fmt.Errorf("pid %q", clip(f))
		}
		dst = append(dst, n)
	}
	return dst, nil
}
