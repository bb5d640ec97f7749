//go:build !linux

package cgroups

import (
	"errors"
	"os"
	"runtime"
)

// DefaultRoot is where the cgroup hierarchies are mounted on Linux.
const DefaultRoot = "/sys/fs/cgroup"

// DefaultParent is the parent of worker cgroups on Linux.
const DefaultParent = "rbee.slice"

// Config chooses where worker cgroups go; see the Linux documentation.
type Config struct {
	Root, Parent string
	Self         map[string]string
	Mode         Mode
	Keeper       func() (*os.Process, error)
}

// Detect reports ModeNone: cgroups exist only on Linux.
func Detect(string) Mode { return ModeNone }

// New fails off Linux: workers run as plain processes without limits.
func New(Config) (Manager, error) {
	return nil, errors.New("cgroups are a Linux feature; this hive runs on " + runtime.GOOS)
}
