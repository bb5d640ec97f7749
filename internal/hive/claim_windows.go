package hive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// lockStateDir makes the state directory; Windows has no flock, and no
// cgroups for two hives to share.
func lockStateDir(dir string) (io.Closer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil && !errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return nil, nil
}
