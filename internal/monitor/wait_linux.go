package monitor

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitExit blocks until pid exits (true) or stop is closed (false). It
// watches a pidfd, so it works for processes that are not the hive's
// children and cannot be fooled by pid reuse.
func waitExit(pid int, stop <-chan struct{}) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, syscall.ESRCH)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		select {
		case <-stop:
			return false
		default:
		}
		n, err := unix.Poll(fds, 250)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
		if n > 0 {
			return true
		}
	}
}
