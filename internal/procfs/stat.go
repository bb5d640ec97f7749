// Package procfs reads the few /proc files the hive needs: a process's stat
// line, command line and I/O counters, and the system uptime. Every reader
// takes the proc root as a value so tests can point it at a fake tree.
package procfs

import (
	"bytes"
	"fmt"
	"strconv"
)

// Stat holds the fields of /proc/<pid>/stat the hive uses.
type Stat struct {
	PID   int
	Comm  string
	State byte
	PPID  int
	// UTime and STime are CPU time in clock ticks (fields 14 and 15).
	UTime, STime uint64
	// CUTime and CSTime are the CPU time of the children it waited for,
	// and theirs, in clock ticks (fields 16 and 17).
	CUTime, CSTime uint64
	// StartTime is the time the process started after boot, in clock ticks
	// (field 22).
	StartTime uint64
	// RSSPages is the resident set size in pages (field 24).
	RSSPages int64
}

// ParseStat parses the contents of /proc/<pid>/stat. The comm field is
// taken between the first '(' and the last ')', because a process may name
// itself anything, spaces and parentheses included (proc(5)).
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return s, fmt.Errorf("parse stat: no (comm) in %q", clip(b))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("parse stat: pid: %w", err)
	}
	s.PID = pid
	s.Comm = string(b[open+1 : closing])
	// rest starts at field 3 (state).
	rest := bytes.Fields(b[closing+1:])
	const need = 24 - 2 // fields 3..24
	if len(rest) < need {
		return s, fmt.Errorf("parse stat: %d fields after comm, want at least %d", len(rest), need)
	}
	field := func(n int) []byte { return rest[n-3] }
	if len(field(3)) != 1 {
		return s, fmt.Errorf("parse stat: state %q", field(3))
	}
	s.State = field(3)[0]
	if s.PPID, err = strconv.Atoi(string(field(4))); err != nil {
		return s, fmt.Errorf("parse stat: ppid: %w", err)
	}
	if s.UTime, err = strconv.ParseUint(string(field(14)), 10, 64); err != nil {
		return s, fmt.Errorf("parse stat: utime: %w", err)
	}
	if s.STime, err = strconv.ParseUint(string(field(15)), 10, 64); err != nil {
		return s, fmt.Errorf("parse stat: stime: %w", err)
	}
	// Signed in the kernel's format, never negative in practice.
	if s.CUTime, err = strconv.ParseUint(string(field(16)), 10, 64); err != nil {
		return s, fmt.Errorf("parse stat: cutime: %w", err)
	}
	if s.CSTime, err = strconv.ParseUint(string(field(17)), 10, 64); err != nil {
		return s, fmt.Errorf("parse stat: cstime: %w", err)
	}
	if s.StartTime, err = strconv.ParseUint(string(field(22)), 10, 64); err != nil {
		return s, fmt.Errorf("parse stat: starttime: %w", err)
	}
	if s.RSSPages, err = strconv.ParseInt(string(field(24)), 10, 64); err != nil {
		return s, fmt.Errorf("parse stat: rss: %w", err)
	}
	return s, nil
}

func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
