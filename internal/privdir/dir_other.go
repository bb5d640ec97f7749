//go:build !linux

package privdir

import (
	"fmt"
	"io/fs"
	"os"
)

// handle is the directory as an os.Root: off Linux the hive has no
// cgroups and runs for development; os.Root still keeps every name
// beneath the directory, and the checks refuse links.
type handle struct{ r *os.Root }

func openDir(path string) (handle, fileStat, error) {
	r, err := os.OpenRoot(path)
	if err != nil {
		return handle{}, fileStat{}, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		r.Close()
		return handle{}, fileStat{}, err
	}
	return handle{r}, statOf(fi), nil
}

func (h handle) close() error { return h.r.Close() }

func (h handle) open(name string, flag int, perm os.FileMode) (*os.File, fileStat, error) {
	if fi, err := h.r.Lstat(name); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fileStat{}, fmt.Errorf("%w: a symbolic link", ErrUnsafe)
	}
	f, err := h.r.OpenFile(name, flag|oNoFollow|oNonBlock, perm)
	if err != nil {
		return nil, fileStat{}, err
	}
	st, err := fstat(f)
	if err == nil && !st.regular {
		err = fmt.Errorf("%w: not a regular file", ErrUnsafe)
	}
	if err == nil {
		err = setBlocking(f)
	}
	if err != nil {
		f.Close()
		return nil, fileStat{}, err
	}
	return f, st, nil
}

func (h handle) rename(oldname, newname string) error { return h.r.Rename(oldname, newname) }

func (h handle) remove(name string) error { return h.r.Remove(name) }

func (h handle) lstat(name string) (fileStat, error) {
	fi, err := h.r.Lstat(name)
	if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}

func (h handle) names() ([]string, error) {
	f, err := h.r.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func lstat(path string) (fileStat, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}

func fstat(f *os.File) (fileStat, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}
