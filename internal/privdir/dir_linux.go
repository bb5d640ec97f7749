package privdir

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// handle is the directory's descriptor (O_PATH).
type handle struct{ fd int }

func openDir(path string) (handle, fileStat, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return handle{}, fileStat{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return handle{}, fileStat{}, err
	}
	return handle{fd}, statOf(&st), nil
}

func (h handle) close() error { return unix.Close(h.fd) }

// open opens name beneath the directory without following any link, and
// without waiting on a FIFO: anything but a regular file is refused
// before the descriptor is made blocking.
func (h handle) open(name string, flag int, perm os.FileMode) (*os.File, fileStat, error) {
	flags := flag | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	fd, err := unix.Openat2(h.fd, name, &unix.OpenHow{
		Flags:   uint64(flags),
		Mode:    uint64(perm.Perm()),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.6. name is one component and O_NOFOLLOW
		// refuses it being a link: the same guarantee.
		fd, err = unix.Openat(h.fd, name, flags, uint32(perm.Perm()))
	}
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, fileStat{}, fmt.Errorf("%w: a symbolic link", ErrUnsafe)
	case errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENXIO):
		// A directory, or a FIFO or socket opened for writing.
		return nil, fileStat{}, fmt.Errorf("%w: not a regular file", ErrUnsafe)
	}
	if err != nil {
		return nil, fileStat{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fileStat{}, err
	}
	fs := statOf(&st)
	if !fs.regular {
		unix.Close(fd)
		return nil, fileStat{}, fmt.Errorf("%w: not a regular file", ErrUnsafe)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fileStat{}, err
	}
	return os.NewFile(uintptr(fd), name), fs, nil
}

func (h handle) rename(oldname, newname string) error {
	return unix.Renameat(h.fd, oldname, h.fd, newname)
}

func (h handle) remove(name string) error { return unix.Unlinkat(h.fd, name, 0) }

func (h handle) lstat(name string) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(h.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fileStat{}, err
	}
	return statOf(&st), nil
}

func (h handle) names() ([]string, error) {
	// An O_PATH descriptor cannot be read: list through a new one.
	fd, err := unix.Openat(h.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

func lstat(path string) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileStat{}, err
	}
	return statOf(&st), nil
}

func statOf(st *unix.Stat_t) fileStat {
	return fileStat{
		dir:     st.Mode&unix.S_IFMT == unix.S_IFDIR,
		regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
		sticky:  st.Mode&unix.S_ISVTX != 0,
		uid:     int(st.Uid),
		nlink:   uint64(st.Nlink),
		perm:    os.FileMode(st.Mode & 0o777),
	}
}
