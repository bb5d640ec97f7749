package cgroups

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rbee-dev/rbee/internal/procfs"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where the cgroup hierarchies are mounted.
const DefaultRoot = "/sys/fs/cgroup"

// DefaultParent is the parent of worker cgroups on cgroup v1 and hybrid
// hosts, below the hive's own cgroup in each controller (the systemd
// Delegate=yes layout). On v2 the parent is chosen by place (place_linux.go).
const DefaultParent = "rbee.slice"

// Config chooses where worker cgroups go. The zero value means: detect the
// layout at /sys/fs/cgroup and place the workers' tree as the host allows
// (see New).
type Config struct {
	// Root is the cgroup mount root; "" means /sys/fs/cgroup.
	Root string
	// Mode forces the layout instead of detecting it (tests use it with a
	// fake Root).
	Mode Mode
	// Parent is the parent of worker cgroups (--cgroup-parent): an
	// absolute path is from the hierarchy root; a relative one is below
	// the hive's own cgroup, on v1 and hybrid hosts only. "" chooses.
	Parent string
	// Self maps each v1 controller (and "" for the v2 hierarchy) to the
	// hive's own cgroup in it; nil means this process's, from
	// /proc/self/cgroup.
	Self map[string]string
	// Systemd makes the delegated scope the workers' tree lives in on a
	// v2 host run by systemd; nil means systemd's own D-Bus API when
	// systemd is this host's init and Root is the real root.
	Systemd Systemd
	// Keeper starts the process that keeps the systemd scope alive while
	// no worker runs (a scope exists only while it holds a process); nil
	// means no scope can be made.
	Keeper func() (*os.Process, error)
}

func (c Config) root() string {
	if c.Root == "" {
		return DefaultRoot
	}
	return c.Root
}

// Detect reports the cgroup layout mounted at root.
func Detect(root string) Mode {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return ModeNone
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return ModeV2
	}
	v1 := false
	for _, c := range []string{"memory", "cpu", "cpuacct"} {
		if err := unix.Statfs(filepath.Join(root, c), &st); err == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
			v1 = true
			break
		}
	}
	if !v1 {
		return ModeNone
	}
	if err := unix.Statfs(filepath.Join(root, "unified"), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return ModeHybrid
	}
	return ModeV1
}

// New opens the worker cgroup subtree, creating the parent. It fails, with
// the reason and what fixes it, when the host has no usable cgroups or the
// hive lacks the rights to them; the caller then runs workers without
// limits.
//
// Where the workers' tree goes: Config.Parent when given; on v1 and
// hybrid hosts DefaultParent below the hive's own cgroup; on v2, never
// the hive's own cgroup nor anything below it (a cgroup that delegates
// controllers may hold no process, and a service manager restarting the
// hive must be able to put it back there), but a delegated systemd scope
// on a systemd host, else a cgroup right below the mount root when the
// root offers the controllers.
func New(cfg Config) (Manager, error) {
	mode := cfg.Mode
	if mode == "" {
		mode = Detect(cfg.root())
	}
	self := cfg.Self
	if self == nil {
		var err error
		if self, err = procfs.SelfCgroups(); err != nil {
			return nil, fmt.Errorf("own cgroup: %w", err)
		}
	}
	parent := cfg.Parent
	if parent != "" {
		if err := CheckParent(parent); err != nil {
			return nil, err
		}
	}
	switch mode {
	case ModeV2:
		return newV2(cfg, self, parent)
	case ModeV1, ModeHybrid:
		if parent == "" {
			parent = DefaultParent
		}
		return newV1(cfg, mode, self, parent)
	default:
		return nil, fmt.Errorf("no cgroup controllers mounted at %s", cfg.root())
	}
}

// resolveParent returns the parent path below the hierarchy root.
func resolveParent(self, parent string) string {
	if filepath.IsAbs(parent) {
		return filepath.Clean(parent)
	}
	return filepath.Join("/", self, parent)
}
