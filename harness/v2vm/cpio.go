package v2vm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// The mode bits of cpio's newc format, as stat(2) has them.
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
	modeBlock   = 0o060000
	modeFIFO    = 0o010000
	modeSocket  = 0o140000
	modeType    = 0o170000
)

// Cpio writes a cpio archive in the "newc" format, the one the kernel
// unpacks as an initramfs (Documentation/driver-api/early-userspace/
// buffer-format.rst). Names are relative ("bin/sh"); a missing parent
// directory is written (0755, root) before its first entry, so entries may
// come in any order that names a directory before what it holds. A name
// written twice is an error, since the kernel would silently keep the
// last. Everything is owned by uid and gid 0 unless an Entry says else.
type Cpio struct {
	w     io.Writer
	ino   uint32
	names map[string]bool
	err   error
}

// NewCpio returns a writer of a newc archive to w. Close writes the
// trailer; it does not close w.
func NewCpio(w io.Writer) *Cpio {
	return &Cpio{w: w, ino: 1, names: map[string]bool{".": true}}
}

// Entry is one archive member's header. Mode holds the file type bits
// (modeDir, modeFile, ...) and the permission bits together, as st_mode.
type Entry struct {
	Name     string
	Mode     uint32
	UID, GID uint32
	Mtime    int64
	Size     int64
	// RdevMajor and RdevMinor name the device of a character or block
	// special file.
	RdevMajor, RdevMinor uint32
}

// Dir writes a directory.
func (c *Cpio) Dir(name string, perm fs.FileMode) error {
	return c.Write(Entry{Name: name, Mode: modeDir | unixPerm(perm)}, nil)
}

// File writes a regular file holding data.
func (c *Cpio) File(name string, perm fs.FileMode, data []byte) error {
	return c.Write(Entry{Name: name, Mode: modeFile | unixPerm(perm), Size: int64(len(data))}, strings.NewReader(string(data)))
}

// Symlink writes a symbolic link to target.
func (c *Cpio) Symlink(name, target string) error {
	return c.Write(Entry{Name: name, Mode: modeSymlink | 0o777, Size: int64(len(target))}, strings.NewReader(target))
}

// Write writes one entry; body supplies e.Size bytes for a regular file or
// a symbolic link's target, and is ignored otherwise.
func (c *Cpio) Write(e Entry, body io.Reader) error {
	if c.err != nil {
		return c.err
	}
	name, err := cleanName(e.Name)
	if err != nil {
		return err
	}
	if c.names[name] {
		return fmt.Errorf("cpio: %s written twice", name)
	}
	if err := c.parents(name); err != nil {
		return err
	}
	e.Name = name
	if t := e.Mode & modeType; t != modeFile && t != modeSymlink {
		e.Size, body = 0, nil
	}
	if err := c.put(e, body); err != nil {
		c.err = err
		return err
	}
	c.names[name] = true
	return nil
}

// parents writes the directories above name not yet in the archive.
func (c *Cpio) parents(name string) error {
	dir := path.Dir(name)
	if c.names[dir] {
		return nil
	}
	if err := c.parents(dir); err != nil {
		return err
	}
	if err := c.put(Entry{Name: dir, Mode: modeDir | 0o755}, nil); err != nil {
		c.err = err
		return err
	}
	c.names[dir] = true
	return nil
}

// Close writes the trailer entry the kernel stops at.
func (c *Cpio) Close() error {
	if c.err != nil {
		return c.err
	}
	if err := c.put(Entry{Name: "TRAILER!!!"}, nil); err != nil {
		c.err = err
		return err
	}
	c.err = errors.New("cpio: archive closed")
	return nil
}

func (c *Cpio) put(e Entry, body io.Reader) error {
	nlink := 1
	if e.Mode&modeType == modeDir {
		nlink = 2
	}
	ino := c.ino
	c.ino++
	if e.Name == "TRAILER!!!" {
		ino, nlink = 0, 1
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.Mode, e.UID, e.GID, nlink, uint32(e.Mtime), uint32(e.Size), 0, 0, e.RdevMajor, e.RdevMinor, len(e.Name)+1, 0)
	if _, err := io.WriteString(c.w, hdr+e.Name+"\x00"+pad(len(hdr)+len(e.Name)+1)); err != nil {
		return err
	}
	if e.Size > 0 {
		n, err := io.CopyN(c.w, body, e.Size)
		if err != nil {
			return fmt.Errorf("cpio: %s: %d of %d bytes: %w", e.Name, n, e.Size, err)
		}
		if _, err := io.WriteString(c.w, pad(int(e.Size%4))); err != nil {
			return err
		}
	}
	return nil
}

// pad returns the NUL bytes that align an n-byte record to 4 bytes.
func pad(n int) string { return "\x00\x00\x00"[:(4-n%4)%4] }

// cleanName makes a member name relative and clean, refusing one that
// climbs out of the archive's root.
func cleanName(name string) (string, error) {
	n := path.Clean("/" + name)[1:]
	if n == "" || strings.HasPrefix(name, "../") || name == ".." || strings.Contains(name, "/../") {
		return "", fmt.Errorf("cpio: bad member name %q", name)
	}
	return n, nil
}

// unixPerm converts fs.FileMode's permission, setuid, setgid and sticky
// bits to st_mode's.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}
