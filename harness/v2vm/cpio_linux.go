package v2vm

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Tree writes the directory tree at root into the archive below prefix
// ("" for the archive's root), keeping each entry's type, mode, owner and
// device numbers; a file with several hard links is written once per
// name. Nothing below root on another file system is written (find -xdev).
func (c *Cpio) Tree(root, prefix string) error {
	rootDev := uint64(0)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			rootDev = st.Dev
			if prefix == "" {
				return nil
			}
		} else if st.Dev != rootDev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		e := Entry{Name: path.Join(prefix, filepath.ToSlash(rel)), Mode: st.Mode, UID: st.Uid, GID: st.Gid,
			Mtime: st.Mtim.Sec, RdevMajor: unix.Major(st.Rdev), RdevMinor: unix.Minor(st.Rdev)}
		if e.Name == "" {
			return nil
		}
		switch st.Mode & modeType {
		case modeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.Size = int64(len(target))
			return c.Write(e, strings.NewReader(target))
		case modeFile:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			e.Size = st.Size
			return c.Write(e, f)
		case modeDir, modeChar, modeBlock, modeFIFO, modeSocket:
			return c.Write(e, nil)
		default:
			return fmt.Errorf("cpio: %s: unknown file type %o", p, st.Mode&modeType)
		}
	})
}

// AddFile writes the host file src as name, with src's permission bits
// and root as owner.
func (c *Cpio) AddFile(name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("cpio: %s is not a regular file", src)
	}
	return c.Write(Entry{Name: name, Mode: modeFile | unixPerm(fi.Mode()), Size: fi.Size()}, f)
}
