package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/limits"
)

// listTree returns the "group/instance" directories two levels below dir,
// skipping names that are not valid worker names (such as the hive's own
// leaf when the parent is its own cgroup).
func listTree(dir string) ([]string, error) {
	groups, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, g := range groups {
		if !g.IsDir() || ids.ValidName(g.Name()) != nil {
			continue
		}
		insts, err := os.ReadDir(filepath.Join(dir, g.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed while we walked
			}
			return nil, fmt.Errorf("list %s: %w", filepath.Join(dir, g.Name()), err)
		}
		for _, in := range insts {
			if in.IsDir() && ids.ValidName(in.Name()) == nil {
				out = append(out, g.Name()+"/"+in.Name())
			}
		}
	}
	return out, nil
}

// deleteUntilGone calls del (containerd's Delete, which refuses while a
// task is left and retries briefly itself) until it succeeds or ctx is
// done, then removes the group directory above each of dirs once its last
// worker is gone.
func deleteUntilGone(ctx context.Context, path string, del func() error, dirs []string) error {
	delay := 5 * time.Millisecond
	for {
		err := del()
		if err == nil || errors.Is(err, os.ErrNotExist) || !anyExists(dirs) {
			for _, d := range dirs {
				// The group directory goes when its last worker does.
				_ = unix.Rmdir(filepath.Dir(d))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove cgroup %s: %w (gave up: %w)", path, err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// removeDirs removes cgroup directories by hand (when containerd has no
// handle for them), retrying while the kernel reports them busy.
func removeDirs(ctx context.Context, dirs []string) error {
	return deleteUntilGone(ctx, dirs[0], func() error {
		var errs []error
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
		return errors.Join(errs...)
	}, dirs)
}

func anyExists(dirs []string) bool {
	for _, d := range dirs {
		if exists(d) {
			return true
		}
	}
	return false
}

// removeAll deletes every worker cgroup of m and then the parent dirs.
func removeAll(ctx context.Context, m Manager, parentDirs []string) error {
	rels, err := m.List()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var errs []error
	for _, rel := range rels {
		g, err := m.Open(rel)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, g.Delete(ctx))
	}
	for _, d := range parentDirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup parent %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

func signalPids(procsFile string, sig Signal) error {
	pids, err := readPidsFile(procsFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("signal pid %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

func readPidsFile(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePids(b, nil)
}

func readFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

func cpuFromQuota(quota int64, period uint64) limits.CPU {
	return limits.CPU(float64(quota) / float64(period) * 100)
}

// killUntilEmpty calls kill until procsFile lists no process, backing off
// between tries, and fails with what is left when ctx is done. A cgroup
// that no longer exists is empty.
func killUntilEmpty(ctx context.Context, procsFile string, kill func() error) error {
	delay := 2 * time.Millisecond
	var killErr error
	for {
		pids, err := readPidsFile(procsFile)
		// ENODEV: the cgroup is being removed under us; it is empty.
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) || err == nil && len(pids) == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kill cgroup: %w", err)
		}
		if killErr = kill(); killErr != nil && !errors.Is(killErr, os.ErrNotExist) {
			killErr = fmt.Errorf("kill cgroup %s: %w", filepath.Dir(procsFile), killErr)
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("cgroup %s still holds pids %v: %w", filepath.Dir(procsFile), pids, ctx.Err()), killErr)
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// releaseDirs removes every group cgroup below each of parents that no
// worker cgroup is left in, then each parent that is left empty: what a
// hive made and no worker uses. A cgroup with children or processes
// refuses rmdir (EBUSY), and stays.
func releaseDirs(parents []string) error {
	var errs []error
	for _, p := range parents {
		ents, err := os.ReadDir(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", p, err))
			continue
		}
		for _, e := range ents {
			if e.IsDir() && ids.ValidName(e.Name()) == nil {
				errs = append(errs, rmdirIfUnused(filepath.Join(p, e.Name())))
			}
		}
		errs = append(errs, rmdirIfUnused(p))
	}
	return errors.Join(errs...)
}

// rmdirIfUnused removes the cgroup dir unless it holds children or
// processes.
func rmdirIfUnused(dir string) error {
	err := unix.Rmdir(dir)
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOTEMPTY) {
		return nil
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}
