package main

import (
	"context"
	"io"
	"net/http"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/cli"
)

func topCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("top", "queen-rbee top [flags]",
		"A live view of the fleet's running workers, hive by hive: CPU and memory against their\n"+
			"limits, GPU, VRAM, restarts. Keys sort it (c cpu, m mem, g gpu, v vram, r restarts, i id);\n"+
			"q quits. Fits an 80-column terminal; --once prints one frame, for scripts.")
	fs.Example("queen-rbee top", "queen-rbee top --sort gpu --once")
	return cli.TopCommand(ctx, out, args, fs, client, true, func(ctx context.Context, c *apiclient.Client) ([]api.FleetWorker, error) {
		var ws []api.FleetWorker
		err := c.Do(ctx, http.MethodGet, "/v1/workers", nil, &ws)
		return ws, err
	})
}
