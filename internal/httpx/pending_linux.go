package httpx

import (
	"net"
	"syscall"
)

// pending reports whether bytes wait unread on c: a client that wrote its
// request before its connection's goroutine first read. It peeks without
// waiting, and through Control, not Read: a Read would queue behind the
// serving goroutine's own blocked read.
func pending(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var n int
	var b [1]byte
	_ = rc.Control(func(fd uintptr) {
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}
