package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// CPUTimes are the aggregate CPU counters of /proc/stat's "cpu" line, in
// clock ticks.
type CPUTimes struct {
	Busy, Total uint64
}

// ParseCPUTimes parses the first ("cpu ") line of /proc/stat: total is the
// sum of every field, busy is total minus idle and iowait.
func ParseCPUTimes(b []byte) (CPUTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return CPUTimes{}, fmt.Errorf("parse /proc/stat: no aggregate cpu line")
	}
	var t CPUTimes
	var idle uint64
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("parse /proc/stat: field %d: %w", i+1, err)
		}
		// guest and guest_nice (fields 9, 10) are already in user and nice.
		if i >= 8 {
			continue
		}
		t.Total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	t.Busy = t.Total - idle
	return t, nil
}

// Meminfo holds the /proc/meminfo values the hive reports, in bytes.
type Meminfo struct {
	Total, Available uint64
}

// ParseMeminfo parses MemTotal and MemAvailable from /proc/meminfo.
func ParseMeminfo(b []byte) (Meminfo, error) {
	var m Meminfo
	var found int
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(k) {
		case "MemTotal":
			dst = &m.Total
		case "MemAvailable":
			dst = &m.Available
		default:
			continue
		}
		f := bytes.Fields(v)
		if len(f) < 1 {
			return m, fmt.Errorf("parse meminfo: %s has no value", k)
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return m, fmt.Errorf("parse meminfo: %s: %w", k, err)
		}
		if len(f) > 1 && string(f[1]) == "kB" {
			n *= 1024
		}
		*dst = n
		found++
	}
	if found != 2 {
		return m, fmt.Errorf("parse meminfo: MemTotal or MemAvailable missing")
	}
	return m, nil
}

// CPUTimes reads /proc/stat.
func (fs FS) CPUTimes() (CPUTimes, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root, "stat"))
	if err != nil {
		return CPUTimes{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	return ParseCPUTimes(b)
}

// Meminfo reads /proc/meminfo.
func (fs FS) Meminfo() (Meminfo, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root, "meminfo"))
	if err != nil {
		return Meminfo{}, fmt.Errorf("read /proc/meminfo: %w", err)
	}
	return ParseMeminfo(b)
}
