package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// logTailLines is how many lines of an exited worker's output a watch
// line is followed by: enough for the error, not a screen.
const logTailLines = 5

// EventText says an event of the queen's stream in words, as the
// dashboard's event log does ("worker llm-30 on nc-hive was OOM-killed
// (SIGKILL)"), with every text from a daemon escaped. A worker's exit is
// followed by the last lines of its output, indented. ok is false for an
// event it cannot read, whose raw form the caller prints instead.
func EventText(typ string, data []byte) (text string, ok bool) {
	switch typ {
	case api.EventWorkerAdded, api.EventWorkerChanged, api.EventWorkerRemoved:
		return workerEventText(typ, data)
	}
	return fleetEventText(typ, data)
}

// fleetEventText says the events about hives, the fleet and the queen.
func fleetEventText(typ string, data []byte) (string, bool) {
	switch typ {
	case api.EventSnapshot:
		var d api.Snapshot
		if json.Unmarshal(data, &d) != nil {
			return "", false
		}
		workers := 0
		for _, h := range d.Hives {
			workers += liveWorkers(h.Workers)
		}
		if d.Resync {
			return fmt.Sprintf("resynced: the queen restarted, or this watch missed more than it keeps; %s, %s now", count(len(d.Hives), "hive"), count(workers, "worker")), true
		}
		return fmt.Sprintf("connected: %s, %s", count(len(d.Hives), "hive"), count(workers, "worker")), true
	case api.EventHiveOnline:
		var d api.HiveOnline
		if json.Unmarshal(data, &d) != nil {
			return "", false
		}
		how := "online"
		switch {
		case d.Restarted:
			how = "restarted"
		case d.Returned:
			how = "is back"
		}
		return fmt.Sprintf("hive %s %s (%s) at %s", ids.Safe(d.HiveID), how, count(liveWorkers(d.Hive.Workers), "worker"), ids.Safe(d.HiveURL)), true
	case api.EventHiveStale, api.EventHiveRemoved:
		var d api.HiveGone
		if json.Unmarshal(data, &d) != nil {
			return "", false
		}
		if typ == api.EventHiveStale {
			return fmt.Sprintf("hive %s is stale: no heartbeat since %s", ids.Safe(d.HiveID), d.LastSeen.Local().Format("15:04:05")), true
		}
		with := ""
		if len(d.WorkerIDs) > 0 {
			with = " with " + count(len(d.WorkerIDs), "worker")
		}
		return fmt.Sprintf("hive %s removed (%s)%s", ids.Safe(d.HiveID), ids.Safe(cmp.Or(d.Reason, "silent")), with), true
	case api.EventQueen:
		var d api.QueenSummary
		if json.Unmarshal(data, &d) != nil {
			return "", false
		}
		return fmt.Sprintf("queen %s, up %s: %s (%d stale), %s", ids.Safe(d.Version), (time.Duration(d.UptimeS) * time.Second).String(),
			count(d.Hives, "hive"), d.Stale, count(d.Workers, "worker")), true
	case api.EventHiveTelemetry:
		var d api.HiveTelemetry
		if json.Unmarshal(data, &d) != nil {
			return "", false
		}
		return fmt.Sprintf("hive %s: cpu %s%%, %s, %s", ids.Safe(d.HiveID), Pct(d.Node.CPUPct), count(len(d.Workers), "worker"), gpuSummary(d.Node.GPUs)), true
	}
	return "", false
}

// workerEventText says a worker's arrival, change and end.
func workerEventText(typ string, data []byte) (string, bool) {
	switch typ {
	case api.EventWorkerAdded:
		var d api.WorkerAdded
		if json.Unmarshal(data, &d) != nil {
			return "", false
		}
		w := d.Worker
		s := fmt.Sprintf("worker %s added on %s", ids.Safe(w.ID), ids.Safe(d.HiveID))
		if w.Model != nil {
			s += " (" + Str(w.Model) + ")"
		}
		if w.PID > 0 {
			s += fmt.Sprintf(", pid %d", w.PID)
		}
		if w.Restarts > 0 {
			s += fmt.Sprintf(", restart %d", w.Restarts)
		}
		return s, true
	case api.EventWorkerChanged:
		var d api.WorkerChanged
		if json.Unmarshal(data, &d) != nil {
			return "", false
		}
		w := d.Worker
		s := fmt.Sprintf("worker %s on %s is %s", ids.Safe(w.ID), ids.Safe(d.HiveID), ids.Safe(string(w.State)))
		if w.Health != nil && w.Health.LastError != "" && w.State == api.StateUnhealthy {
			s += ": " + ids.Safe(w.Health.LastError)
		}
		if w.RestartError != "" {
			s += "; the hive gave up restarting it: " + ids.Safe(strings.TrimPrefix(w.RestartError, "not restarted: "))
		}
		return s, true
	}
	var d api.WorkerRemoved
	if json.Unmarshal(data, &d) != nil {
		return "", false
	}
	x := api.WorkerExit{ExitCode: d.ExitCode, Signal: d.Signal, OOMKilled: d.OOMKilled, Stopped: d.Reason == api.ReasonStopped}
	return fmt.Sprintf("worker %s on %s %s", ids.Safe(d.WorkerID), ids.Safe(d.HiveID), ExitPhrase(x, d.Reason)) + indentTail(d.LogTail), true
}

// ExitPhrase says how a worker ended, after its name: "was stopped",
// "was OOM-killed (SIGKILL)", "exited with code 2". reason is the
// registry's (worker_removed); "" for a hive's own record.
func ExitPhrase(x api.WorkerExit, reason string) string {
	sig := func() string {
		if x.Signal != nil {
			return " (" + ids.Safe(*x.Signal) + ")"
		}
		return ""
	}
	switch {
	case x.Stopped || reason == api.ReasonStopped:
		return "was stopped"
	case x.OOMKilled != nil && *x.OOMKilled:
		return "was OOM-killed" + sig()
	case x.Signal != nil:
		return "was killed by " + ids.Safe(*x.Signal)
	case x.ExitCode != nil:
		return fmt.Sprintf("exited with code %d", *x.ExitCode)
	case reason == "" || reason == api.ReasonExited:
		return "exited (exit status unknown: an adopted worker is not the hive's child)"
	case reason == api.ReasonGone:
		return "is gone from its hive's list"
	case reason == api.ReasonHiveRestarted:
		return "was not re-adopted after its hive restarted"
	case reason == api.ReasonReplaced:
		return "was replaced by a new process"
	}
	return "was removed (" + ids.Safe(reason) + ")"
}

// indentTail is the end of a worker's output as lines under an event:
// its last logTailLines, each indented and escaped; "" when there is none.
func indentTail(tail string) string {
	tail = strings.TrimRight(tail, "\n")
	if strings.TrimSpace(tail) == "" {
		return ""
	}
	lines := strings.Split(tail, "\n")
	lines = lines[max(0, len(lines)-logTailLines):]
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\n    │ ")
		b.WriteString(ids.Safe(strings.TrimRight(l, "\r")))
	}
	return b.String()
}

// liveWorkers counts the workers that have not exited.
func liveWorkers(ws []api.Worker) int {
	n := 0
	for _, w := range ws {
		if w.State != api.StateExited {
			n++
		}
	}
	return n
}

// count is "1 hive", "3 hives".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// gpuSummary is the GPUs of a host in a few words.
func gpuSummary(gs []api.NodeGPUStat) string {
	if len(gs) == 0 {
		return "no GPU"
	}
	var parts []string
	for _, g := range gs {
		util := "-"
		if !math.IsNaN(g.UtilPct) {
			util = fmt.Sprintf("%.0f%%", g.UtilPct)
		}
		parts = append(parts, fmt.Sprintf("GPU%d %s", g.Index, util))
	}
	return strings.Join(parts, " ")
}
