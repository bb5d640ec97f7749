package hive

import (
	"io"

	"github.com/rbee-dev/rbee/internal/cgroups"
)

// Claim makes this process the only hive on the cgroup parent cg
// manages (nil: none) and on stateDir ("": none) until release is
// called; call it before anything that could touch either. A second hive
// on either would adopt the first one's workers and remove their kept
// spawn requests (both seen when a user started two hives on one machine
// with the defaults), or, failing to start, remove its cgroup parent
// with their processes. The claims are flocks: a hive that dies releases
// them.
func Claim(cg cgroups.Manager, stateDir string) (release func(), err error) {
	var held []io.Closer
	release = func() {
		for _, c := range held {
			c.Close()
		}
	}
	if cg != nil {
		c, err := cg.Lock()
		if err != nil {
			return func() {}, err
		}
		held = append(held, c)
	}
	if stateDir != "" {
		c, err := lockStateDir(stateDir)
		if err != nil {
			release()
			return func() {}, err
		}
		if c != nil {
			held = append(held, c)
		}
	}
	return release, nil
}
