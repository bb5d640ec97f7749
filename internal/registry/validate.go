package registry

import (
	"errors"
	"fmt"
	"net/url"
	"unicode/utf8"

	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/telemetry"
)

// ErrInvalid marks a heartbeat the queen refuses; the message names the
// field.
var ErrInvalid = errors.New("invalid heartbeat")

// Bounds on a heartbeat, so one hive cannot make the queen hold unbounded
// data.
const (
	MaxWorkers   = 4096
	MaxGPUs      = 64
	maxIDLen     = 253 // a DNS name
	maxStrLen    = 4096
	maxArgs      = 256
	maxErrors    = 32
	maxPIDs      = 65536
	minInterval  = 100   // ms
	maxInterval  = 600e3 // ms
	defaultIntMS = 1000
)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// ValidHiveID reports whether s may be a hive id: 1 to 253 of
// [A-Za-z0-9._-], not "." or "..".
func ValidHiveID(s string) error {
	if len(s) == 0 || len(s) > maxIDLen {
		return fmt.Errorf("length %d, want 1 to %d", len(s), maxIDLen)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%q is not allowed", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q not allowed (use A-Z a-z 0-9 . _ -)", r)
		}
	}
	return nil
}

// Validate checks every bound and identifier of hb, filling the interval
// default.
func Validate(hb *telemetry.Heartbeat) error {
	if err := ValidHiveID(hb.HiveID); err != nil {
		return invalid("hive_id %q: %v", clip(hb.HiveID), err)
	}
	if hb.SessionID == "" || len(hb.SessionID) > 128 || !printable(hb.SessionID) {
		return invalid("session_id: want 1 to 128 printable characters")
	}
	if hb.HiveURL != "" {
		u, err := url.Parse(hb.HiveURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(hb.HiveURL) > maxStrLen {
			return invalid("hive_url %q: want an http(s) URL", clip(hb.HiveURL))
		}
	}
	if hb.IntervalMS == 0 {
		hb.IntervalMS = defaultIntMS
	}
	if hb.IntervalMS < minInterval || hb.IntervalMS > maxInterval {
		return invalid("interval_ms %d: want %d to %d", hb.IntervalMS, minInterval, int64(maxInterval))
	}
	for _, s := range []struct{ name, v string }{{"version", hb.Version}, {"gpu_backend", hb.GPUBackend}} {
		if len(s.v) > 128 || !printable(s.v) {
			return invalid("%s: at most 128 printable characters", s.name)
		}
	}
	if len(hb.Node.GPUs) > MaxGPUs {
		return invalid("node.gpus: %d GPUs, at most %d", len(hb.Node.GPUs), MaxGPUs)
	}
	if len(hb.Node.Errors) > maxErrors {
		return invalid("node.errors: at most %d", maxErrors)
	}
	if len(hb.Workers) > MaxWorkers {
		return invalid("workers: %d, at most %d", len(hb.Workers), MaxWorkers)
	}
	seen := make(map[string]bool, len(hb.Workers))
	for i := range hb.Workers {
		w := &hb.Workers[i]
		if err := validWorker(w); err != nil {
			return invalid("workers[%d] (%q): %v", i, clip(w.ID), err)
		}
		if seen[w.ID] {
			return invalid("workers[%d]: duplicate id %q", i, w.ID)
		}
		seen[w.ID] = true
	}
	return nil
}

func validWorker(w *telemetry.Worker) error {
	if err := cgroups.ValidName(w.Group); err != nil {
		return fmt.Errorf("group: %v", err)
	}
	if err := cgroups.ValidName(w.Instance); err != nil {
		return fmt.Errorf("instance: %v", err)
	}
	if w.ID != w.Group+"-"+w.Instance {
		return fmt.Errorf("id must be group-instance")
	}
	switch w.State {
	case telemetry.StateStarting, telemetry.StateRunning, telemetry.StateExited:
	default:
		return fmt.Errorf("state %q: want starting, running or exited", clip(string(w.State)))
	}
	if w.PID < 0 || len(w.PIDs) > maxPIDs {
		return fmt.Errorf("pid or pids out of range")
	}
	if len(w.Args) > maxArgs || len(w.GPUs) > MaxGPUs || len(w.Errors) > maxErrors {
		return fmt.Errorf("too many args, gpus or errors")
	}
	strs := append([]string{w.Binary, w.Cgroup}, w.Args...)
	strs = append(strs, w.Errors...)
	if w.Model != nil {
		strs = append(strs, *w.Model)
	}
	if w.Signal != nil {
		strs = append(strs, *w.Signal)
	}
	for _, s := range strs {
		if len(s) > maxStrLen || !utf8.ValidString(s) {
			return fmt.Errorf("a string is longer than %d bytes or not UTF-8", maxStrLen)
		}
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
