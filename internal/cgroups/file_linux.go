package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// cfile is a cgroupfs or procfs file read again and again through one open
// descriptor: pread at offset 0 makes the kernel regenerate the contents, so
// a pass costs one syscall per file instead of open+read+close.
type cfile struct {
	path string
	f    *os.File
	// reopen makes every read open the file afresh. cgroup v1's
	// cgroup.procs caches its pid list per open file and frees the cache
	// only a second after the last read (CGROUP_PIDLIST_DESTROY_DELAY in
	// kernel/cgroup/cgroup-v1.c), so a descriptor read more often than that
	// keeps returning the pids of its first read.
	reopen bool
}

// read returns the current contents, using and growing *buf.
func (c *cfile) read(buf *[]byte) ([]byte, error) {
	if c.reopen {
		_ = c.close()
	}
	if c.f == nil {
		f, err := os.Open(c.path)
		if err != nil {
			return nil, err
		}
		c.f = f
	}
	if len(*buf) == 0 {
		*buf = make([]byte, 4096)
	}
	for {
		n, err := c.f.ReadAt(*buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s: %w", c.path, err)
		}
		if n < len(*buf) {
			return (*buf)[:n], nil
		}
		if len(*buf) >= 16<<20 {
			return nil, fmt.Errorf("read %s: larger than 16 MiB", c.path)
		}
		*buf = make([]byte, 2*len(*buf))
	}
}

func (c *cfile) close() error {
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}
