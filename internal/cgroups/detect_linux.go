package cgroups

import (
	"fmt"
	"path/filepath"

	"github.com/rbee-dev/rbee/internal/procfs"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where the cgroup hierarchies are mounted.
const DefaultRoot = "/sys/fs/cgroup"

// DefaultParent is the parent of worker cgroups, below the hive's own
// cgroup (the systemd Delegate=yes layout).
const DefaultParent = "rbee.slice"

// Config chooses where worker cgroups go. The zero value means: detect the
// layout at /sys/fs/cgroup and use rbee.slice below the hive's own cgroup.
type Config struct {
	// Root is the cgroup mount root; "" means /sys/fs/cgroup.
	Root string
	// Mode forces the layout instead of detecting it (tests use it with a
	// fake Root).
	Mode Mode
	// Parent is the parent of worker cgroups: a relative path is below the
	// hive's own cgroup (per controller on v1), an absolute one is from the
	// hierarchy root. "" means DefaultParent.
	Parent string
	// Self maps each v1 controller (and "" for the v2 hierarchy) to the
	// hive's own cgroup in it; nil means this process's, from
	// /proc/self/cgroup.
	Self map[string]string
	// Pid is the hive's pid, moved to a leaf cgroup when the v2
	// no-internal-processes rule needs it; 0 means os.Getpid().
	Pid int
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
// the reason, when the host has no usable cgroups or the hive lacks the
// rights to them; the caller then runs workers without limits.
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
	if parent == "" {
		parent = DefaultParent
	}
	if err := CheckParent(parent); err != nil {
		return nil, err
	}
	switch mode {
	case ModeV2:
		return newV2(cfg, self, parent)
	case ModeV1, ModeHybrid:
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
