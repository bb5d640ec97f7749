package cgroups

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/rbee-dev/rbee/internal/ids"
)

// splitRel checks that rel is exactly "group/instance" with valid names.
func splitRel(rel string) (group, instance string, err error) {
	group, instance, ok := strings.Cut(rel, "/")
	if !ok {
		return "", "", fmt.Errorf("worker cgroup %q: want group/instance", rel)
	}
	if err := ids.ValidName(group); err != nil {
		return "", "", fmt.Errorf("worker cgroup %q: group: %w", rel, err)
	}
	if err := ids.ValidName(instance); err != nil {
		return "", "", fmt.Errorf("worker cgroup %q: instance: %w", rel, err)
	}
	return group, instance, nil
}

// CheckParent says what is wrong with a --cgroup-parent value: it must
// name a cgroup below the root, without "..".
func CheckParent(p string) error {
	if strings.ContainsRune(p, 0) || strings.Contains(p, "\n") {
		return fmt.Errorf("cgroup parent %q: bad character", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("cgroup parent %q: \"..\" is not allowed", p)
		}
	}
	if filepath.Clean("/"+p) == "/" {
		return fmt.Errorf("cgroup parent %q: must name a cgroup below the root", p)
	}
	return nil
}
