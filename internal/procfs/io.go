package procfs

import (
	"bytes"
	"fmt"
	"strconv"
)

// IO holds the storage counters of /proc/<pid>/io: bytes the task caused to
// be read from or written to the storage layer (page-cache dirtying counts
// as a write). They work on cgroup v1 and v2 alike but vanish with the task.
type IO struct {
	ReadBytes, WriteBytes uint64
}

// ParseIO parses the contents of /proc/<pid>/io.
func ParseIO(b []byte) (IO, error) {
	var io IO
	var seen int
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(k) {
		case "read_bytes":
			dst = &io.ReadBytes
		case "write_bytes":
			dst = &io.WriteBytes
		default:
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return IO{}, fmt.Errorf("parse io: %s: %w", k, err)
		}
		*dst = n
		seen++
	}
	if seen < 2 {
		return IO{}, fmt.Errorf("parse io: read_bytes/write_bytes missing")
	}
	return io, nil
}
