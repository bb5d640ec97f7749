package reread

import (
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// handle is a raw descriptor: an os.File would try to register each
// reopened cgroup.procs with the runtime's poller (one more syscall per
// worker per pass) for files that never block.
type handle struct {
	fd int // descriptor + 1; 0 when closed, so the zero value is closed
}

func (h *handle) open() bool { return h.fd > 0 }

func (h *handle) openFile(dir *Dir, path string) error {
	at, name := unix.AT_FDCWD, path
	if dir != nil && filepath.Dir(path) == dir.Path {
		if dir.d.fd <= 0 {
			if err := dir.d.open(dir.Path); err != nil {
				return err
			}
		}
		at, name = dir.d.fd-1, filepath.Base(path)
	}
	for {
		fd, err := unix.Openat(at, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "open", Path: path, Err: err}
		}
		h.fd = fd + 1
		return nil
	}
}

func (h *handle) pread(b []byte) (int, error) {
	if h.fd <= 0 {
		return 0, errClosed
	}
	for {
		n, err := unix.Pread(h.fd-1, b, 0)
		if err == unix.EINTR {
			continue
		}
		return n, err
	}
}

func (h *handle) close() error {
	err := unix.Close(h.fd - 1)
	h.fd = 0
	return err
}

// dirHandle is an O_PATH descriptor of a directory, + 1.
type dirHandle struct{ fd int }

func (d *dirHandle) open(path string) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	d.fd = fd + 1
	return nil
}

func (d *dirHandle) close() error {
	if d.fd <= 0 {
		return nil
	}
	err := unix.Close(d.fd - 1)
	d.fd = 0
	return err
}
