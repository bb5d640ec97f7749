package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	prom "github.com/prometheus/procfs"
)

// FS is a proc filesystem at Root (normally "/proc").
//
// The files read for every worker on every collection pass (the stat and
// io of each task) are read by hand, on descriptors kept open, because
// that path is measured to matter (see benchmarks/); everything else goes
// through github.com/prometheus/procfs (host.go). /proc/uptime is read by
// hand too: the library has no reader for it, and its boot time has
// whole-second resolution, which would make a worker's start time wrong
// by up to a second.
type FS struct {
	Root string

	once    sync.Once
	prom    prom.FS
	promErr error
}

// Default is the host's /proc.
var Default = &FS{Root: "/proc"}

// Path returns the path of name under the proc root for pid.
func (fs *FS) Path(pid int, name string) string {
	return filepath.Join(fs.Root, strconv.Itoa(pid), name)
}

// Stat reads and parses /proc/<pid>/stat.
func (fs *FS) Stat(pid int) (Stat, error) {
	b, err := os.ReadFile(fs.Path(pid, "stat"))
	if err != nil {
		return Stat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return ParseStat(b)
}

// Uptime reads the seconds since boot from /proc/uptime.
func (fs *FS) Uptime() (float64, error) {
	path := filepath.Join(fs.Root, "uptime")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return ParseUptime(b)
}

// StartedAt returns the wall-clock time pid started, from field 22 of its
// stat line, the system uptime and the clock tick, and that field itself
// (clock ticks after boot: it names the process exactly, whatever the
// wall clock does). now is the caller's clock reading taken next to the
// uptime read.
func (fs *FS) StartedAt(pid int, tick uint64, now time.Time) (time.Time, uint64, error) {
	st, err := fs.Stat(pid)
	if err != nil {
		return time.Time{}, 0, err
	}
	up, err := fs.Uptime()
	if err != nil {
		return time.Time{}, 0, err
	}
	return StartTime(st.StartTime, tick, up, now), st.StartTime, nil
}

// StartTime converts a start time in ticks after boot to wall-clock time,
// given the uptime in seconds read at now.
func StartTime(startTicks, tick uint64, uptime float64, now time.Time) time.Time {
	if tick == 0 {
		tick = 100
	}
	age := uptime - float64(startTicks)/float64(tick)
	if age < 0 {
		age = 0
	}
	return now.Add(-time.Duration(age * float64(time.Second)))
}

// ParseUptime parses /proc/uptime ("12345.67 54321.00").
func ParseUptime(b []byte) (float64, error) {
	f := bytes.Fields(b)
	if len(f) < 1 {
		return 0, fmt.Errorf("parse uptime: empty")
	}
	v, err := strconv.ParseFloat(string(f[0]), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("parse uptime %q: bad number", clip(b))
	}
	return v, nil
}
