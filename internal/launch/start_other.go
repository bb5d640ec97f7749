//go:build !linux

package launch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// NewBinDir checks that dir is an absolute directory.
func NewBinDir(dir string) (*BinDir, error) {
	real, err := resolveBinDir(dir)
	if err != nil {
		return nil, err
	}
	return &BinDir{Path: filepath.Clean(dir), Real: real}, nil
}

// OpenBinary opens the worker binary; off Linux there is no openat2, so
// the check resolves links and compares paths (a race can defeat it).
func OpenBinary(path string, dir *BinDir) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: %s: want an absolute path", ErrBinary, path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBinary, path, errors.Unwrap(err))
	}
	if dir != nil {
		r, err := filepath.Rel(dir.Real, real)
		if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("%w: %s is outside --worker-bin-dir %s", ErrForbidden, path, dir.Path)
		}
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBinary, path, errors.Unwrap(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBinary, path)
	}
	return os.Open(real)
}

// Start starts the worker as a plain child process: off Linux there are
// no cgroups, credentials or capabilities to set.
func Start(s Spec) (*exec.Cmd, error) {
	if s.Exe == nil || len(s.Argv) == 0 {
		return nil, errors.New("launch: no binary or argv")
	}
	cmd := &exec.Cmd{Path: s.Exe.Name(), Args: s.Argv, Env: s.Env, Dir: s.Dir, SysProcAttr: sysProcAttr()}
	if s.Stdout != nil {
		cmd.Stdout = s.Stdout
	}
	if s.Stderr != nil {
		cmd.Stderr = s.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Argv[0], err)
	}
	return cmd, nil
}

// ServeShim returns at once: off Linux workers start without a shim.
func ServeShim() {}

// StartKeeper fails: off Linux there are no cgroups to keep.
func StartKeeper() (*os.Process, error) {
	return nil, errors.New("launch: no cgroup keeper off Linux")
}
