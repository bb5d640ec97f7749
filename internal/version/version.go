// Package version says which build of rbee is running.
package version

import (
	"runtime/debug"
	"sync"
)

// Base is the release version; builds add the VCS revision. A release
// build sets it (go tool mage release: -ldflags -X ...version.Base=v1.2.3).
var Base = "0.1.0-dev"

var (
	once sync.Once
	full string
)

// String returns the version, with the short commit and a "+dirty" mark
// when the binary carries VCS information.
func String() string {
	once.Do(func() {
		full = Base
		if bi, ok := debug.ReadBuildInfo(); ok {
			full = withVCS(Base, bi.Settings)
		}
	})
	return full
}

// withVCS appends the short commit, and "+dirty" for a modified tree, to
// base when settings name a commit (and the base does not already).
func withVCS(base string, settings []debug.BuildSetting) string {
	var rev, dirty string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return base
	}
	return base + "+" + rev + dirty
}
