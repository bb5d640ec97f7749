//go:build linux && !386 && !arm

package launch

import "golang.org/x/sys/unix"

// The 32-bit id syscalls; on 386 and arm these names are the 16-bit ones.
const (
	sysSetgroups = unix.SYS_SETGROUPS
	sysSetresgid = unix.SYS_SETRESGID
	sysSetresuid = unix.SYS_SETRESUID
)
