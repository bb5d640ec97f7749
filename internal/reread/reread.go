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
	// Dir, when set, is the open directory Path is in: opening through it
	// skips the walk of a long cgroupfs path, which otherwise costs more
	// than the read (BenchmarkStress100Workers' profile).
	Dir *Dir

	h handle
}

// Dir is a directory held open to open files in it. The zero value with
// Path set is ready: it opens on first use.
type Dir struct {
	Path string
	d    dirHandle
}

// Close releases the directory; a later use opens it again.
func (d *Dir) Close() error {
	if d == nil {
		return nil
	}
	return d.d.close()
}

// Read returns the current contents, using and growing *buf; the result
// aliases *buf.
func (c *File) Read(buf *[]byte) ([]byte, error) {
	if c.Reopen {
		// Not held between reads: nothing would reuse it.
		defer func() {
			if c.h.open() {
				_ = c.h.close()
			}
		}()
	}
	if !c.h.open() {
		if err := c.h.openFile(c.Dir, c.Path); err != nil {
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

// Close releases the descriptor and Dir's; a later Read opens them again.
func (c *File) Close() error {
	var err error
	if c.h.open() {
		err = c.h.close()
	}
	return errors.Join(err, c.Dir.Close())
}

var errClosed = errors.New("file not open")
