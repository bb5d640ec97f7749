//go:build !linux

package procfs

// ClockTick returns 100: there is no procfs off Linux, so the value is only
// a placeholder for the shared code.
func ClockTick() uint64 { return 100 }
