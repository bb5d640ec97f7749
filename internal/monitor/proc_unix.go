//go:build unix

package monitor

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// exitStatus returns the exit code, or the signal's name when a signal
// ended the process.
func exitStatus(ps *os.ProcessState) (code *int, sig *string) {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		name := unix.SignalName(ws.Signal())
		if name == "" {
			name = ws.Signal().String()
		}
		return nil, &name
	}
	c := ps.ExitCode()
	return &c, nil
}

// killGroup kills a plain worker's process group (it leads its session).
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

func osPageSize() int { return unix.Getpagesize() }

// oNoFollow makes an open fail on a symbolic link.
const oNoFollow = syscall.O_NOFOLLOW

// ownerOf returns the uid that owns fi.
func ownerOf(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// oNonBlock keeps an open from waiting on a FIFO.
const oNonBlock = syscall.O_NONBLOCK

// setBlocking undoes oNonBlock once the file is known to be regular.
func setBlocking(f *os.File) error { return unix.SetNonblock(int(f.Fd()), false) }
