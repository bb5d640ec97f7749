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
	fs, client := clientFlags("top", "rbee-hive top [flags]",
		"A live view of the hive's running workers, as docker stats and nvtop show: CPU and memory\n"+
			"against their limits, GPU, VRAM, restarts. Keys sort it (c cpu, m mem, g gpu, v vram,\n"+
			"r restarts, i id); q quits. Fits an 80-column terminal; --once prints one frame, for scripts.")
	fs.Example("rbee-hive top", "rbee-hive top --sort vram --once")
	return cli.TopCommand(ctx, out, args, fs, client, false, func(ctx context.Context, c *apiclient.Client) ([]api.FleetWorker, error) {
		var ws []api.Worker
		if err := c.Do(ctx, http.MethodGet, "/v1/workers", nil, &ws); err != nil {
			return nil, err
		}
		rows := make([]api.FleetWorker, len(ws))
		for i, w := range ws {
			rows[i].Worker = w
		}
		return rows, nil
	})
}
