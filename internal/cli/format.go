package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

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
	return api.FormatBytes(*v)
}

// Note summarises how a worker ended, whether its hive gave up
// restarting it, and what could not be read.
func Note(w api.Worker) string {
	var parts []string
	if w.State == api.StateExited {
		switch {
		case w.Stopped:
			parts = append(parts, "stopped")
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
	if w.RestartError != "" {
		parts = append(parts, "gave up restarting: "+strings.TrimPrefix(w.RestartError, "not restarted: "))
	}
	parts = append(parts, w.Errors...)
	return ids.Safe(strings.Join(parts, "; "))
}

// WorkerTable prints workers as a table: with their hive (the queen's
// view) or without (a hive's own).
func WorkerTable(out io.Writer, ws []api.FleetWorker, withHive bool) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if withHive {
		fmt.Fprint(tw, "HIVE\t")
	}
	fmt.Fprint(tw, "ID\tSTATE\tPID\tMODEL\tCPU%\tMEM\tVRAM\tGPU%\tUPTIME\tRESTARTS\t")
	if withHive {
		fmt.Fprint(tw, "IDLE\t")
	}
	fmt.Fprintln(tw, "NOTE")
	for _, w := range ws {
		note := Note(w.Worker)
		if w.Stale {
			note = strings.TrimPrefix(note+"; hive stale", "; ")
		}
		if withHive {
			fmt.Fprintf(tw, "%s\t", ids.Safe(w.HiveID))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t", ids.Safe(w.ID), ids.Safe(string(w.State)), w.PID, Str(w.Model),
			Pct(w.CPUPct), Bytes(w.MemBytes), Bytes(w.VRAMBytes), Pct(w.GPUUtilPct), Secs(w.UptimeS), w.Restarts)
		if withHive {
			fmt.Fprintf(tw, "%v\t", w.Idle)
		}
		fmt.Fprintln(tw, note)
	}
	return tw.Flush()
}

// SpawnSummary says in one line what a spawn started.
func SpawnSummary(w api.Worker) string {
	parts := []string{fmt.Sprintf("pid %d", w.PID)}
	if w.Model != nil {
		parts = append(parts, "model "+Str(w.Model))
	}
	limit := func(name, v string) {
		parts = append(parts, name+" "+v)
	}
	switch {
	case !w.LimitsEnforced:
		parts = append(parts, "no limits (the hive has no cgroup rights)")
	default:
		cpu, mem := "unlimited", "unlimited"
		if w.CPULimitPct != nil {
			cpu = fmt.Sprintf("%g%%", *w.CPULimitPct)
		}
		if w.MemLimitBytes != nil {
			mem = Bytes(api.Ptr(uint64(*w.MemLimitBytes)))
		}
		limit("cpu", cpu)
		limit("memory", mem)
		parts = append(parts, "cgroup "+ids.Safe(w.Cgroup))
	}
	return fmt.Sprintf("%s spawned: %s", ids.Safe(w.ID), strings.Join(parts, ", "))
}

// WithoutExited returns ws without its exited workers, and how many
// there were: lists show the running ones unless asked for --all, as
// docker ps does.
func WithoutExited(ws []api.FleetWorker) ([]api.FleetWorker, int) {
	out := make([]api.FleetWorker, 0, len(ws))
	for _, w := range ws {
		if w.State != api.StateExited {
			out = append(out, w)
		}
	}
	return out, len(ws) - len(out)
}

// HiddenNote is the line under a list that left out exited workers.
func HiddenNote(out io.Writer, hidden int) {
	if hidden > 0 {
		fmt.Fprintf(out, "(%s not shown: --all lists them)\n", count(hidden, "exited worker"))
	}
}
