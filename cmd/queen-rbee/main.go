// Command queen-rbee keeps the cluster's registry of hives and workers,
// expires what goes silent, answers scheduling queries and streams every
// change over Server-Sent Events. Its subcommands query a running queen.
package main

import "github.com/rbee-dev/rbee/internal/cli"

func main() {
	cli.Main("queen-rbee", "queen-rbee keeps the registry of hives and workers.", daemon, []cli.Command{
		{Name: "hives", Summary: "list hives and their state", Run: hivesCmd},
		{Name: "workers", Summary: "list workers: workers [--model M] [--hive H] [--idle true] [--state ready]", Run: workersCmd},
		{Name: "schedule", Summary: "where should a request go: schedule --model M [--vram 16Gi] [--gpus K] [--all]", Run: scheduleCmd},
		{Name: "release", Summary: "release VRAM reservations that schedule made: release ID...", Run: releaseCmd},
		{Name: "watch", Summary: "print the events as they happen, in words", Run: watchCmd},
		{Name: "top", Summary: "a live view of the fleet's workers: CPU, memory, GPU, VRAM, restarts", Run: topCmd},
		{Name: "dashboard", Summary: "print the live dashboard's URL, with the read-only token", Run: dashboardCmd},
	})
}
