package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/ids"
)

func clientFlags(name, usage, summary string) (*cli.Flags, func() (*apiclient.Client, error)) {
	return cli.ClientFlags("queen-rbee", name, "queen", "RBEE_QUEEN", "http://"+api.QueenAddr, usage, summary)
}

func hivesCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("hives", "queen-rbee hives [flags]", "Lists every hive: state, last heartbeat, workers, GPUs.")
	fs.Example("queen-rbee hives --queen https://queen-a:7833,https://queen-b:7833")
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
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%d\t%d\t%s\t%s\n", ids.Safe(h.ID), ids.Safe(h.State), time.Since(h.LastSeen).Round(100*time.Millisecond),
			len(h.Workers), len(h.Node.GPUs), cli.Pct(h.Node.CPUPct), cli.Str(&h.URL))
	}
	return tw.Flush()
}

func workersCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("workers", "queen-rbee workers [flags]", "Lists the running workers across hives (--all: exited ones too); workers of stale hives are marked.")
	fs.Example("queen-rbee workers --model qwen2.5-0.5b --state ready")
	model := fs.String("model", "", "", "only workers serving this model")
	hive := fs.String("hive", "", "", "only workers of this hive")
	idle := fs.String("idle", "", "", "true: only idle workers; false: only busy ones")
	state := fs.String("state", "", "", "only workers in this state: starting, ready, unhealthy or exited")
	asJSON := fs.Bool("json", "", false, "print JSON instead of a table")
	all := fs.Bool("all", "", false, "also list exited workers (kept by their hive for its --exited-retention)")
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
	hidden := 0
	if !*all && *state == "" {
		ws, hidden = cli.WithoutExited(ws)
	}
	if *asJSON {
		return cli.PrintJSON(out, ws)
	}
	if err := cli.WorkerTable(out, ws, true); err != nil {
		return err
	}
	cli.HiddenNote(out, hidden)
	return nil
}

func scheduleCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("schedule", "queen-rbee schedule --model M [--vram 16Gi] [--gpus 2] [--all] [--json]",
		"Answers where a request for a model should go: the least loaded running worker already\n"+
			"serving it that is below saturation (idle ones first; --all ranks them all), else the\n"+
			"hive and GPU(s) with the most free VRAM that fit --vram, which the answer reserves\n"+
			"for --reservation-ttl (the queen's) or until the hive reports a new worker on it.")
	fs.Example("queen-rbee schedule --model qwen2.5-0.5b --all", "queen-rbee schedule --model llama-3.1-70b --vram 140Gi --gpus 2 --json")
	model := fs.String("model", "", "", "model name (required)")
	vram := fs.String("vram", "", "", "VRAM a new worker needs in all: bytes or with K/M/G/T/Ki/Mi/Gi/Ti")
	gpus := fs.Int("gpus", "", 0, "split the new worker over this many GPUs of one hive")
	all := fs.Bool("all", "", false, "list every eligible worker, ranked, for a router to spread requests")
	asJSON := fs.Bool("json", "", false, "print the answer as JSON")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	if *model == "" {
		return cli.Usagef("schedule needs --model")
	}
	if *gpus < 0 {
		return cli.Usagef("--gpus %d: want 1 or more", *gpus)
	}
	c, err := client()
	if err != nil {
		return err
	}
	q := url.Values{"model": {*model}}
	if *vram != "" {
		q.Set("vram_bytes", *vram)
	}
	if *gpus > 0 {
		q.Set("gpus", fmt.Sprint(*gpus))
	}
	if *all {
		q.Set("all", "true")
	}
	var d api.Decision
	if err := c.Do(ctx, http.MethodGet, "/v1/schedule?"+q.Encode(), nil, &d); err != nil {
		return err
	}
	if *asJSON {
		return cli.PrintJSON(out, d)
	}
	return printDecision(out, d)
}

// printDecision prints a scheduling answer as a short report.
func printDecision(out io.Writer, d api.Decision) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	switch d.Kind {
	case "worker":
		w := d.Worker
		if d.ServeAddr != "" {
			fmt.Fprintf(tw, "ROUTE TO\t%s: %s on %s, pid %d, model %s\n", ids.Safe(d.ServeAddr), ids.Safe(w.ID), ids.Safe(d.HiveID), w.PID, cli.Str(w.Model))
		} else {
			fmt.Fprintf(tw, "ROUTE TO\t%s on %s, pid %d, model %s (its command line names no --port: where it serves is the worker's own)\n", ids.Safe(w.ID), ids.Safe(d.HiveID), w.PID, cli.Str(w.Model))
		}
		if d.Load != nil {
			fmt.Fprintf(tw, "LOAD\t%s\n", loadText(*d.Load))
		}
	default:
		idx := make([]string, len(d.GPUs))
		for i, g := range d.GPUs {
			idx[i] = fmt.Sprint(g.Index)
		}
		if len(idx) == 0 && d.GPU != nil {
			idx = []string{fmt.Sprint(d.GPU.Index)}
		}
		fmt.Fprintf(tw, "START ON\t%s (%s), GPU %s\n", ids.Safe(d.HiveID), ids.Safe(d.HiveURL), strings.Join(idx, ", "))
		fmt.Fprintf(tw, "FREE VRAM\t%s on the tightest GPU, reservations counted\n", cli.Bytes(d.FreeVRAMBytes))
		if d.ReservationID != "" {
			fmt.Fprintf(tw, "RESERVATION\t%s until %s (release: queen-rbee release %s)\n", ids.Safe(d.ReservationID), d.ExpiresAt.UTC().Format(time.RFC3339), ids.Safe(d.ReservationID))
		}
	}
	fmt.Fprintf(tw, "WHY\t%s\n", ids.Safe(d.Reason))
	for _, p := range d.PassedOver {
		fmt.Fprintf(tw, "PASSED OVER\t%s\n", ids.Safe(p))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Ranked) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tWORKER\tHIVE\tSERVES AT\tLOAD")
	for i, r := range d.Ranked {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, ids.Safe(r.ID), ids.Safe(r.HiveID), cmp.Or(ids.Safe(r.ServeAddr), "-"), loadText(r.Load))
	}
	return tw.Flush()
}

func loadText(l api.WorkerLoad) string {
	state := "busy"
	switch {
	case l.Saturated:
		state = "saturated"
	case l.Idle:
		state = "idle"
	}
	return state + ": " + ids.Safe(l.Why)
}

func releaseCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("release", "queen-rbee release [flags] RESERVATION...",
		"Releases VRAM reservations that schedule made (operator token): the room is free for the next\n"+
			"placement at once, not when the hive reports the new worker or the reservation expires.")
	fs.Example("queen-rbee release rsv-9879e233a354adbea96ad22059d48555")
	if err := cli.ParseArgs(fs, args, -1); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return cli.Usagef("release needs a reservation id (schedule prints it; GET /v1/reservations lists them)")
	}
	c, err := client()
	if err != nil {
		return err
	}
	for _, id := range fs.Args() {
		if err := c.Do(ctx, http.MethodDelete, "/v1/reservations/"+url.PathEscape(id), nil, nil); err != nil {
			return fmt.Errorf("release %s: %w", id, err)
		}
		fmt.Fprintf(out, "%s released\n", ids.Safe(id))
	}
	return nil
}
