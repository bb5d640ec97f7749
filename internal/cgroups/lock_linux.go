package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
)

// lockDir takes an exclusive flock on the directory dir, without waiting.
// cgroupfs directories take flocks like any other: the lock lives as long
// as the descriptor, so a hive that dies releases it.
func lockDir(dir string) (io.Closer, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("lock cgroup parent: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (give each hive its own --cgroup-parent)", ErrLocked, dir)
		}
		return nil, fmt.Errorf("lock cgroup parent %s: %w", dir, err)
	}
	return f, nil
}

// Lock claims the memory controller's parent, the one every v1 hive has.
func (m *v1Manager) Lock() (io.Closer, error) {
	return lockDir(m.dir(cgroup1.Memory, m.parents[cgroup1.Memory]))
}

// Lock claims the parent.
func (m *v2Manager) Lock() (io.Closer, error) { return lockDir(m.dir(m.parent)) }
