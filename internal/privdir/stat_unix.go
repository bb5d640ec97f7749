//go:build unix && !linux

package privdir

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	oNoFollow = syscall.O_NOFOLLOW
	oNonBlock = syscall.O_NONBLOCK
)

func setBlocking(f *os.File) error { return unix.SetNonblock(int(f.Fd()), false) }

func statOf(fi os.FileInfo) fileStat {
	s := fileStat{dir: fi.IsDir(), regular: fi.Mode().IsRegular(), sticky: fi.Mode()&os.ModeSticky != 0, perm: fi.Mode().Perm(), nlink: 1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.uid, s.nlink = int(st.Uid), uint64(st.Nlink)
	}
	return s
}
