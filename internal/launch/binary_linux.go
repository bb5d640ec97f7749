package launch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// NewBinDir checks dir: absolute, a directory, and neither it nor any
// directory above it writable by group or others (whoever can write there
// can swap what the hive runs as the worker user).
func NewBinDir(dir string) (*BinDir, error) {
	real, err := resolveBinDir(dir)
	if err != nil {
		return nil, err
	}
	for d := real; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return nil, fmt.Errorf("--worker-bin-dir: stat %s: %w", d, err)
		}
		if d == real && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, fmt.Errorf("--worker-bin-dir %s: not a directory", dir)
		}
		// A sticky directory above (/tmp) is safe: nobody can rename what
		// is not theirs there. The bin dir itself must not be writable.
		if st.Mode&0o022 != 0 && (d == real || st.Mode&unix.S_ISVTX == 0) {
			return nil, fmt.Errorf("--worker-bin-dir %s: %s is writable by group or others (mode %04o)", dir, d, st.Mode&0o7777)
		}
		if d == "/" {
			break
		}
	}
	return &BinDir{Path: filepath.Clean(dir), Real: real}, nil
}

// rel returns path relative to the bin dir, by either of its names.
func (b *BinDir) rel(path string) (string, bool) {
	for _, base := range []string{b.Real, b.Path} {
		if r, err := filepath.Rel(base, filepath.Clean(path)); err == nil && r != ".." && !strings.HasPrefix(r, "../") && r != "." {
			return r, true
		}
	}
	return "", false
}

// OpenBinary opens the worker binary at path (absolute) for Start. With a
// bin dir, the path must lie beneath it and is resolved with openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so no link, "..", or race can lead
// outside; the file and every directory on the way must not be writable
// by group or others. Errors wrap ErrBinary or ErrForbidden.
func OpenBinary(path string, dir *BinDir) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: %s: want an absolute path", ErrBinary, path)
	}
	var fd int
	var err error
	if dir == nil {
		fd, err = unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBinary, path, err)
		}
	} else {
		rel, ok := dir.rel(path)
		if !ok {
			return nil, fmt.Errorf("%w: %s is outside --worker-bin-dir %s", ErrForbidden, path, dir.Path)
		}
		dfd, err := unix.Open(dir.Real, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open --worker-bin-dir: %w", err)
		}
		defer unix.Close(dfd)
		fd, err = unix.Openat2(dfd, rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch {
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
			return nil, fmt.Errorf("%w: %s: %v", ErrBinary, path, err)
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
			return nil, fmt.Errorf("%w: %s: a symbolic link or \"..\" on the way is not allowed beneath --worker-bin-dir", ErrForbidden, path)
		case err != nil:
			return nil, fmt.Errorf("%w: %s: %v", ErrBinary, path, err)
		}
		if err := checkDirs(dfd, rel); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s: %v", ErrBinary, path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("%w: %s is not a regular file", ErrBinary, path)
	case st.Mode&0o111 == 0:
		err = fmt.Errorf("%w: %s is not executable", ErrBinary, path)
	case dir != nil && st.Mode&0o022 != 0:
		err = fmt.Errorf("%w: %s is writable by group or others (mode %04o)", ErrForbidden, path, st.Mode&0o7777)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkDirs refuses a directory between the bin dir and the binary that
// group or others can write.
func checkDirs(dfd int, rel string) error {
	parts := strings.Split(filepath.Dir(rel), "/")
	for i := range parts {
		if parts[0] == "." {
			break
		}
		sub := filepath.Join(parts[:i+1]...)
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, sub, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBinary, sub, err)
		}
		if st.Mode&0o022 != 0 {
			return fmt.Errorf("%w: directory %s beneath --worker-bin-dir is writable by group or others (mode %04o)", ErrForbidden, sub, st.Mode&0o7777)
		}
	}
	return nil
}
