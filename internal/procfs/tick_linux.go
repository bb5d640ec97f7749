package procfs

import "golang.org/x/sys/unix"

// atClkTck is the auxiliary-vector key for the kernel's USER_HZ
// (<linux/auxvec.h>), what sysconf(_SC_CLK_TCK) returns.
const atClkTck = 17

// ClockTick returns the clock tick (USER_HZ) the kernel uses for the times
// in /proc/<pid>/stat, read from the auxiliary vector, or 100 when absent.
func ClockTick() uint64 {
	auxv, err := unix.Auxv()
	if err == nil {
		for _, kv := range auxv {
			if kv[0] == atClkTck && kv[1] > 0 {
				return uint64(kv[1])
			}
		}
	}
	return 100
}
