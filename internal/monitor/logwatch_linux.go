package monitor

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// watchWrites wakes the log guard as soon as a worker writes to log
// (inotify), so a fast writer is caught within a write or two of the
// bound, not a polling period later. stop ends the watch.
func watchWrites(log *os.File) (wake <-chan struct{}, stop func(), err error) {
	// The watch is of the open file's inode, named through its
	// descriptor: no path the log directory could redirect.
	path := fmt.Sprintf("/proc/self/fd/%d", log.Fd())
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("inotify %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), "inotify:"+path)
	ch := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			// Many writes, one wake: the guard looks at the size.
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, func() { f.Close() }, nil
}
