//go:build linux

package benchmarks

import "os/exec"

func runOnce(path string) error {
	return exec.Command(path, "pmon", "-c", "1", "-s", "um").Run()
}
