// Package privdir gives a daemon the files of a directory it owns (worker
// logs, kept spawn requests) without trusting anything else that may
// share the file system. The hive runs as root: a file name a request
// chose, a symbolic link, a hard link to /etc/passwd or a FIFO planted in
// one of its directories must never make it read, write or truncate a
// file other than one it made there itself.
//
// A Dir is checked when it is opened (the directory and every directory
// above it belong to root or the daemon's user and no one else may write
// them, but for sticky directories such as /tmp), and every operation
// goes through its descriptor: names are single path components, opened
// on Linux with openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, new files are
// created with O_EXCL (random names for temporary ones), and an existing
// file is used only when it is a regular file with one link, owned by the
// daemon's user.
package privdir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrUnsafe classes a directory or file that others could have planted
// or may change: a link, a file of another user, a writable directory.
var ErrUnsafe = errors.New("unsafe")

// Options says how a directory is made and checked.
type Options struct {
	// Create makes the directory (and missing parents) when it is absent.
	Create bool
	// Mode is the mode of a directory made (0700 when zero).
	Mode os.FileMode
	// Private also refuses a directory others may read or list (mode
	// bits for group or others set), for files that hold secrets.
	Private bool
}

// Dir is an open directory of the daemon.
type Dir struct {
	path string
	uid  int
	h    handle
}

// Open checks and opens the directory at path. It fails, wrapping
// ErrUnsafe, when the directory or one above it may be changed by someone
// other than root and the daemon's user.
func Open(path string, o Options) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if o.Mode == 0 {
		o.Mode = 0o700
	}
	if o.Create {
		if err := os.MkdirAll(abs, o.Mode); err != nil {
			return nil, fmt.Errorf("make %s: %w", abs, err)
		}
	}
	// Links on the way (/var/run → /run) are the administrator's: the
	// checks are of the directories they lead to.
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", abs, err)
	}
	uid := os.Geteuid()
	if err := checkParents(real, uid); err != nil {
		return nil, err
	}
	h, st, err := openDir(real)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", abs, err)
	}
	d := &Dir{path: abs, uid: uid, h: h}
	if err := d.checkDir(abs, st, o.Private); err != nil {
		h.close()
		return nil, err
	}
	return d, nil
}

// Path returns the directory's path as given (made absolute).
func (d *Dir) Path() string { return d.path }

// Join returns the path of name in the directory, for messages.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

// Close releases the directory's descriptor.
func (d *Dir) Close() error { return d.h.close() }

// checkDir refuses a directory that is not the daemon user's or that
// others may write (or, private, read).
func (d *Dir) checkDir(name string, st fileStat, private bool) error {
	switch {
	case !st.dir:
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafe, name)
	case st.uid != d.uid:
		return fmt.Errorf("%w: %s is owned by uid %d, not this daemon's (%d): chown it or pick another directory", ErrUnsafe, name, st.uid, d.uid)
	case st.perm&0o022 != 0:
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o): chmod go-w it", ErrUnsafe, name, st.perm)
	case private && st.perm&0o077 != 0:
		return fmt.Errorf("%w: %s is open to group or others (mode %04o): chmod 700 it", ErrUnsafe, name, st.perm)
	}
	return nil
}

// checkParents refuses a directory above path that someone other than
// root and uid could change: one of theirs, or one writable by group or
// others without the sticky bit (a sticky directory, such as /tmp, lets
// no one rename or remove the entries of another).
func checkParents(path string, uid int) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		st, err := lstat(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		switch {
		case st.uid != 0 && st.uid != uid:
			return fmt.Errorf("%w: %s, above %s, is owned by uid %d", ErrUnsafe, dir, path, st.uid)
		case st.perm&0o022 != 0 && !st.sticky:
			return fmt.Errorf("%w: %s, above %s, is writable by group or others (mode %04o)", ErrUnsafe, dir, path, st.perm)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// checkName refuses anything but one plain path component.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.ContainsRune(name, filepath.Separator) {
		return fmt.Errorf("%w: %q is not a file name", ErrUnsafe, name)
	}
	return nil
}

// checkFile refuses an existing file that the daemon did not make there:
// anything but a regular file, a file with more than one link (a hard
// link to a file elsewhere), or a file of another user.
func (d *Dir) checkFile(name string, st fileStat) error {
	switch {
	case !st.regular:
		return fmt.Errorf("%w: %s is not a regular file", ErrUnsafe, d.Join(name))
	case st.nlink != 1:
		return fmt.Errorf("%w: %s has %d links (a hard link to another file?)", ErrUnsafe, d.Join(name), st.nlink)
	case st.uid != d.uid:
		return fmt.Errorf("%w: %s is owned by uid %d, not this daemon's (%d)", ErrUnsafe, d.Join(name), st.uid, d.uid)
	}
	return nil
}

// Open opens the existing file name with flag (O_RDONLY, O_WRONLY or
// O_RDWR, O_APPEND, O_TRUNC; not O_CREATE): never through a link, never a
// FIFO or device, never a file with another link or of another user.
func (d *Dir) Open(name string, flag int) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if flag&(os.O_CREATE|os.O_EXCL) != 0 {
		return nil, fmt.Errorf("privdir: Open %s: use Create for a new file", name)
	}
	// O_TRUNC waits until the file is known to be ours.
	f, st, err := d.h.open(name, flag&^os.O_TRUNC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d.Join(name), err)
	}
	err = d.checkFile(name, st)
	if err == nil && flag&os.O_TRUNC != 0 {
		err = f.Truncate(0)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Create makes the new file name (mode perm) and opens it with flag
// (O_WRONLY or O_RDWR, O_APPEND): it fails with fs.ErrExist when anything
// has that name.
func (d *Dir) Create(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	f, _, err := d.h.open(name, flag|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", d.Join(name), err)
	}
	return f, nil
}

// CreateTemp makes a new file named prefix plus a random suffix, opened
// for writing, and returns it with its name.
func (d *Dir) CreateTemp(prefix string, perm os.FileMode) (*os.File, string, error) {
	for range 10 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		name := prefix + hex.EncodeToString(b[:])
		f, err := d.Create(name, os.O_WRONLY, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("create a temporary file in %s: names taken", d.path)
}

// Rename renames oldname to newname within the directory, replacing a
// file of that name (the entry, never the file's contents).
func (d *Dir) Rename(oldname, newname string) error {
	if err := checkName(oldname); err != nil {
		return err
	}
	if err := checkName(newname); err != nil {
		return err
	}
	if err := d.h.rename(oldname, newname); err != nil {
		return fmt.Errorf("rename %s to %s: %w", d.Join(oldname), newname, err)
	}
	return nil
}

// Remove removes the file name (not a directory). A missing file is no
// error.
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := d.h.remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", d.Join(name), err)
	}
	return nil
}

// Exists reports whether something named name is in the directory, link
// or not.
func (d *Dir) Exists(name string) bool {
	if checkName(name) != nil {
		return false
	}
	_, err := d.h.lstat(name)
	return err == nil
}

// Names lists the directory's entries.
func (d *Dir) Names() ([]string, error) {
	names, err := d.h.names()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.path, err)
	}
	return names, nil
}

// WriteFile replaces name with b through a new temporary file (mode perm)
// and a rename, so a crash leaves the old file or the new one.
func (d *Dir) WriteFile(name string, b []byte, perm os.FileMode) error {
	if err := checkName(name); err != nil {
		return err
	}
	f, tmp, err := d.CreateTemp("."+name+".", perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.Rename(tmp, name)
	}
	if err != nil {
		_ = d.Remove(tmp)
	}
	return err
}

// fileStat is what the checks need of a file.
type fileStat struct {
	dir, regular, sticky bool
	uid                  int
	nlink                uint64
	perm                 os.FileMode
}
