// Package reread reads kernel files (cgroupfs, procfs) again and again
// through one open descriptor: pread at offset 0 makes the kernel
// regenerate the contents, so a collection pass costs one syscall per file
// instead of open, read and close.
package reread

import (
	"errors"
	"fmt"
)

// maxSize bounds one file's contents.
const maxSize = 16 << 20

// File is one kernel file read repeatedly. The zero value with Path set
// is ready; it is not safe for concurrent use.
type File struct {
	Path string
	// Reopen makes every read open the file afresh, for files whose open
	// descriptor caches its contents. cgroup v1's cgroup.procs keeps its
	// pid list per open file until a second after the last read
	// (CGROUP_PIDLIST_DESTROY_DELAY in kernel/cgroup/cgroup-v1.c), so a
	// descriptor read more often than that keeps returning its first list.
	Reopen bool

	h handle
}

// Read returns the current contents, using and growing *buf; the result
// aliases *buf.
func (c *File) Read(buf *[]byte) ([]byte, error) {
	if c.Reopen {
		// Not held between reads: nothing would reuse it.
		defer c.Close()
	}
	if !c.h.open() {
		if err := c.h.openFile(c.Path); err != nil {
			return nil, err
		}
	}
	if len(*buf) == 0 {
		*buf = make([]byte, 4096)
	}
	for {
		n, err := c.h.pread(*buf)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", c.Path, err)
		}
		if n < len(*buf) {
			return (*buf)[:n], nil
		}
		if len(*buf) >= maxSize {
			return nil, fmt.Errorf("read %s: larger than %d bytes", c.Path, maxSize)
		}
		*buf = make([]byte, 2*len(*buf))
	}
}

// Close releases the descriptor; a later Read opens it again.
func (c *File) Close() error {
	if !c.h.open() {
		return nil
	}
	return c.h.close()
}

var errClosed = errors.New("file not open")
