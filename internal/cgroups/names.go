package cgroups

import (
	"fmt"
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
