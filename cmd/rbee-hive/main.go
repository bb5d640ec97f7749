// Command rbee-hive runs on each GPU host: it spawns inference workers into
// cgroups with CPU and memory limits, watches them, collects their
// telemetry and pushes heartbeats to queen-rbee. Its subcommands talk to a
// running hive's API.
package main

import (
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/launch"
)

func main() {
	// First: a re-executed hive that is a worker's shim becomes the worker.
	launch.ServeShim()
	cli.Main("rbee-hive", "rbee-hive spawns and watches inference workers on this host.", daemon, []cli.Command{
		{Name: "spawn", Summary: "spawn a worker: spawn --instance 9301 [flags] -- /path/worker args...", Run: spawnCmd},
		{Name: "list", Summary: "list the hive's running workers (--all: exited ones too)", Run: listCmd},
		{Name: "top", Summary: "a live view of the workers: CPU, memory, GPU, VRAM, restarts", Run: topCmd},
		{Name: "show", Summary: "show one worker as JSON: show ID", Run: showCmd},
		{Name: "logs", Summary: "print a worker's output: logs [-f] [--tail N] [--previous] ID", Run: logsCmd},
		{Name: "stop", Summary: "stop a worker and remove its cgroup: stop ID", Run: stopCmd},
		{Name: "rm", Summary: "remove exited workers' records: rm ID...", Run: rmCmd},
		{Name: "prune", Summary: "remove every exited worker's record", Run: pruneCmd},
		{Name: "info", Summary: "show the hive's settings and state", Run: infoCmd},
	})
}
