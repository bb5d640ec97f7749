package monitor

import (
	"fmt"
	"os"

	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/procfs"
)

// DetectPlatform opens the worker cgroup subtree described by cfg. Without
// cgroup rights the platform still has procfs, and the reason limits are
// not enforced is filled in.
func DetectPlatform(cfg cgroups.Config) Platform {
	p := Platform{Proc: procfs.Default, ClockTick: procfs.ClockTick()}
	m, err := cgroups.New(cfg)
	if err != nil {
		p.NoCgroupsReason = reason(err)
		return p
	}
	p.Cgroups = m
	return p
}

func reason(err error) string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("not running as root and no delegated cgroup is writable: %v", err)
	}
	return err.Error()
}
