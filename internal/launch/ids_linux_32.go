//go:build linux && (386 || arm)

package launch

import "golang.org/x/sys/unix"

// The 32-bit id syscalls of 386 and arm.
const (
	sysSetgroups = unix.SYS_SETGROUPS32
	sysSetresgid = unix.SYS_SETRESGID32
	sysSetresuid = unix.SYS_SETRESUID32
)
