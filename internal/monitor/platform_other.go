//go:build !linux

package monitor

import (
	"runtime"

	"github.com/rbee-dev/rbee/internal/cgroups"
)

// DetectPlatform reports that workers run as plain processes: cgroups and
// procfs are Linux features.
func DetectPlatform(cgroups.Config) Platform {
	return Platform{NoCgroupsReason: "cgroups are a Linux feature; this hive runs on " + runtime.GOOS}
}
