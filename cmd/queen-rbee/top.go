package main

import (
	"context"
	"io"
	"net/http"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cli"
)

func topCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("top", "queen-rbee top [flags]",
		"A live view of the fleet's running workers, hive by hive: CPU and memory against their\n"+
			"limits, GPU, VRAM, restarts. Keys sort it (c cpu, m mem, g gpu, v vram, r restarts, i id);\n"+
			"q quits. Fits an 80-column terminal; --once prints one frame, for scripts.")
	fs.Example("queen-rbee top", "queen-rbee top --sort gpu --once")
	interval := fs.Duration("interval", "", cli.DefaultTopInterval, "time between frames")
	once := fs.Bool("once", "", false, "print one frame and exit")
	sortBy := fs.String("sort", "", "cpu", "the first order: cpu, mem, gpu, vram, restarts or id")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	order, err := cli.TopSort(*sortBy)
	if err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	return cli.RunTop(ctx, out, cli.TopConfig{Source: c.Base, Fleet: true, Sort: order, Interval: *interval, Once: *once,
		Fetch: func(ctx context.Context) ([]api.FleetWorker, error) {
			var ws []api.FleetWorker
			err := c.Do(ctx, http.MethodGet, "/v1/workers", nil, &ws)
			return ws, err
		}})
}
