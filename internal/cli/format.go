package cli

import (
	"fmt"
	"strings"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// Str prints an optional string, "-" when absent, with control
// characters escaped: a remote party's text must not drive the terminal.
func Str(s *string) string {
	if s == nil {
		return "-"
	}
	return ids.Safe(*s)
}

// Pct prints an optional percentage.
func Pct(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *v)
}

// Secs prints an optional duration in seconds compactly.
func Secs(v *float64) string {
	if v == nil {
		return "-"
	}
	s := int64(*v)
	switch {
	case s >= 86400:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	case s >= 3600:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	}
	return fmt.Sprintf("%ds", s)
}

// Bytes prints an optional byte count in binary units.
func Bytes(v *uint64) string {
	if v == nil {
		return "-"
	}
	b := float64(*v)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if b < 1024 || u == "TiB" {
			if u == "B" {
				return fmt.Sprintf("%.0f%s", b, u)
			}
			return fmt.Sprintf("%.1f%s", b, u)
		}
		b /= 1024
	}
	return ""
}

// Note summarises how a worker ended and what could not be read.
func Note(w api.Worker) string {
	var parts []string
	if w.State == api.StateExited {
		switch {
		case w.OOMKilled != nil && *w.OOMKilled:
			parts = append(parts, "OOM-killed")
		case w.Signal != nil:
			parts = append(parts, "killed by "+*w.Signal)
		case w.ExitCode != nil:
			parts = append(parts, fmt.Sprintf("exit %d", *w.ExitCode))
		default:
			parts = append(parts, "exited")
		}
	}
	parts = append(parts, w.Errors...)
	return ids.Safe(strings.Join(parts, "; "))
}
