//go:build !linux

package monitor

// waitExit cannot watch a process that is not the hive's child off Linux;
// adoption only happens on Linux, where workers live in cgroups.
func waitExit(pid int, stop <-chan struct{}) bool {
	<-stop
	return false
}
