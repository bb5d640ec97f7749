package cgroups

import (
	"fmt"
	"strings"
)

// MaxNameLen bounds a group or instance name.
const MaxNameLen = 64

// ValidName reports whether s may be a path component of a worker cgroup:
// only [A-Za-z0-9._-], not "." or "..", at most MaxNameLen bytes. Anything
// else could reach a cgroup outside the hive's subtree.
func ValidName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("longer than %d characters", MaxNameLen)
	case s == "." || s == "..":
		return fmt.Errorf("%q is not allowed", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q not allowed (use A-Z a-z 0-9 . _ -)", r)
		}
	}
	return nil
}

// splitRel checks that rel is exactly "group/instance" with valid names.
func splitRel(rel string) (group, instance string, err error) {
	group, instance, ok := strings.Cut(rel, "/")
	if !ok {
		return "", "", fmt.Errorf("worker cgroup %q: want group/instance", rel)
	}
	if err := ValidName(group); err != nil {
		return "", "", fmt.Errorf("worker cgroup %q: group: %w", rel, err)
	}
	if err := ValidName(instance); err != nil {
		return "", "", fmt.Errorf("worker cgroup %q: instance: %w", rel, err)
	}
	return group, instance, nil
}
