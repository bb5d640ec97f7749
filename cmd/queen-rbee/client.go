package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cli"
)

func clientFlags(name, usage, summary string) (*cli.Flags, func() (*api.Client, error)) {
	return cli.ClientFlags("queen-rbee", name, "queen", "RBEE_QUEEN", "http://127.0.0.1:7833", usage, summary)
}

func hivesCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("hives", "queen-rbee hives [flags]", "Lists every hive: state, last heartbeat, workers, GPUs.")
	asJSON := fs.Bool("json", "", false, "print JSON instead of a table")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	var hs []api.Hive
	if err := cli.Get(ctx, client, "/v1/hives", &hs); err != nil {
		return err
	}
	if *asJSON {
		return cli.PrintJSON(out, hs)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HIVE\tSTATE\tLAST SEEN\tWORKERS\tGPUS\tCPU%\tURL")
	for _, h := range hs {
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%d\t%d\t%s\t%s\n", h.ID, h.State, time.Since(h.LastSeen).Round(100*time.Millisecond),
			len(h.Workers), len(h.Node.GPUs), cli.Pct(h.Node.CPUPct), cli.Str(&h.URL))
	}
	return tw.Flush()
}

func workersCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("workers", "queen-rbee workers [flags]", "Lists workers across hives; workers of stale hives are marked.")
	model := fs.String("model", "", "", "only workers serving this model")
	hive := fs.String("hive", "", "", "only workers of this hive")
	idle := fs.String("idle", "", "", "true: only idle workers; false: only busy ones")
	state := fs.String("state", "", "", "only workers in this state: starting, running or exited")
	asJSON := fs.Bool("json", "", false, "print JSON instead of a table")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"model": *model, "hive": *hive, "idle": *idle, "state": *state} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var ws []api.FleetWorker
	if err := c.Do(ctx, http.MethodGet, "/v1/workers?"+q.Encode(), nil, &ws); err != nil {
		return err
	}
	if *asJSON {
		return cli.PrintJSON(out, ws)
	}
	return cli.WorkerTable(out, ws, true)
}

func scheduleCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("schedule", "queen-rbee schedule --model M [--vram 16Gi]",
		"Answers where a request for a model should go: the least loaded idle worker already\n"+
			"serving it, else the hive and GPU with the most free VRAM that fits --vram.")
	model := fs.String("model", "", "", "model name (required)")
	vram := fs.String("vram", "", "", "VRAM a new worker needs: bytes or with K/M/G/Ki/Mi/Gi")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	if *model == "" {
		return cli.Usagef("schedule needs --model")
	}
	c, err := client()
	if err != nil {
		return err
	}
	q := url.Values{"model": {*model}}
	if *vram != "" {
		q.Set("vram_bytes", *vram)
	}
	var d api.Decision
	if err := c.Do(ctx, http.MethodGet, "/v1/schedule?"+q.Encode(), nil, &d); err != nil {
		return err
	}
	return cli.PrintJSON(out, d)
}

func watchCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("watch", "queen-rbee watch [flags]", "Prints every event of the queen's stream, one line each, until interrupted.")
	all := fs.Bool("telemetry", "", false, "also print hive_telemetry and queen summary events")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.Base, "/")+"/v1/heartbeats/stream", nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	// The stream never ends: the client's whole-request timeout must not
	// apply, its TLS settings (--ca) must.
	hc := *c.HTTP
	hc.Timeout = 0
	conn := (&sse.Client{HTTPClient: &hc, Backoff: sse.Backoff{MaxInterval: 5 * time.Second}}).NewConnection(req)
	conn.Buffer(nil, 256<<20) // the snapshot of a large fleet is one large event
	conn.SubscribeToAll(func(e sse.Event) {
		if !*all && (e.Type == api.EventHiveTelemetry || e.Type == "queen") {
			return
		}
		fmt.Fprintf(out, "%s %-15s id=%s %s\n", time.Now().Format("15:04:05.000"), e.Type, e.LastEventID, e.Data)
	})
	err = conn.Connect()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
