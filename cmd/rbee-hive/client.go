package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/ids"
)

func clientFlags(name, usage, summary string) (*cli.Flags, func() (*apiclient.Client, error)) {
	return cli.ClientFlags("rbee-hive", name, "hive", "RBEE_HIVE", "http://"+api.HiveAddr, usage, summary)
}

func spawnCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("spawn", "rbee-hive spawn --instance NAME [flags] -- /path/to/worker [args...]",
		"Spawns a worker on the hive. Its id is GROUP-INSTANCE and its cgroup GROUP/INSTANCE;\n"+
			"the binary must be an absolute path. Prints a one-line summary (--json: the record).")
	fs.Example("rbee-hive spawn --instance 9301 --cpu-limit 250% --memory-limit 24Gi --health-http http://127.0.0.1:9301/health --restart on-failure -- /opt/llm/worker --model qwen2.5-0.5b --port 9301")
	group := fs.String("group", "", "llm", "worker group, e.g. llm or embed")
	instance := fs.String("instance", "", "", "instance name, e.g. the port it serves (required)")
	cpu := fs.String("cpu-limit", "", "", `CPU limit: percent of one core ("250%") or cores ("2.5")`)
	mem := fs.String("memory-limit", "", "", `memory limit: bytes or with K/M/G/T/Ki/Mi/Gi/Ti ("512Mi")`)
	dir := fs.String("dir", "", "", "working directory of the worker")
	asJSON := fs.Bool("json", "", false, "print the worker's record as JSON")
	healthHTTP := fs.String("health-http", "", "", "readiness: a URL on this host answering 2xx when the worker can serve (http://127.0.0.1:9301/health)")
	healthTCP := fs.String("health-tcp", "", "", "readiness: a host:port on this host accepting connections")
	healthEvery := fs.Duration("health-interval", "", 0, "time between health checks (default 5s)")
	healthStart := fs.Duration("health-start-period", "", 0, "how long the worker may take to become healthy (a model loading) before it counts as unhealthy")
	restart := fs.String("restart", "", "", "restart policy: never (default), on-failure or always")
	maxRestarts := fs.Int("max-restarts", "", 0, "with --restart: restarts allowed in --restart-window (default 5)")
	restartWindow := fs.Duration("restart-window", "", 0, "with --restart: the window max-restarts counts in (default 10m)")
	settle := fs.Duration("settle", "", defaultSettle, "watch the worker this long after the spawn and fail, with its last output, if it exits (0: return at once)")
	var env cli.Repeated
	fs.Var(&env, "env", "environment variable K=V for the worker (repeatable)")
	if err := cli.ParseCommand(fs, args); err != nil {
		return err
	}
	if *instance == "" || fs.NArg() == 0 {
		return cli.Usagef("spawn needs --instance and a binary after the flags (try rbee-hive spawn --help)")
	}
	spec := api.SpawnRequest{Group: *group, Instance: *instance, Binary: fs.Arg(0), Args: fs.Args()[1:],
		CPULimit: *cpu, MemoryLimit: *mem, Dir: *dir, Env: map[string]string{}}
	if *healthHTTP != "" || *healthTCP != "" {
		spec.Health = &api.HealthCheck{HTTP: *healthHTTP, TCP: *healthTCP, Interval: api.Duration(*healthEvery), StartPeriod: api.Duration(*healthStart)}
	}
	if *restart != "" {
		spec.Restart = &api.RestartPolicy{Policy: *restart, MaxRestarts: *maxRestarts, Window: api.Duration(*restartWindow)}
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return cli.Usagef("--env %q: want K=V", kv)
		}
		spec.Env[k] = v
	}
	c, err := client()
	if err != nil {
		return err
	}
	var rec api.Worker
	if err := c.Do(ctx, http.MethodPost, "/v1/workers", spec, &rec); err != nil {
		return fmt.Errorf("spawn %s: %w", spec.ID(), err)
	}
	if !*asJSON {
		fmt.Fprintln(out, cli.SpawnSummary(rec))
	}
	last, err := settleWorker(ctx, c, rec, *settle)
	if *asJSON {
		if perr := cli.PrintJSON(out, last); perr != nil {
			return perr
		}
	}
	return err
}

// defaultSettle is how long spawn watches a new worker: a worker that
// cannot start (a bad flag, a missing model file) is most often gone by
// then, and the user learns it at once rather than from a list later.
const defaultSettle = 500 * time.Millisecond

// settleWorker watches a spawned worker for d and returns its latest
// record; an error says it exited meanwhile, how, and its last output.
func settleWorker(ctx context.Context, c *apiclient.Client, rec api.Worker, d time.Duration) (api.Worker, error) {
	path := "/v1/workers/" + url.PathEscape(rec.ID)
	deadline := time.Now().Add(d)
	for rec.State != api.StateExited && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return rec, nil
		case <-time.After(50 * time.Millisecond):
		}
		var w api.Worker
		if err := c.Do(ctx, http.MethodGet, path, nil, &w); err != nil || w.PID == 0 {
			continue // a hiccup of the API is not the worker's end
		}
		rec = w
	}
	if rec.State != api.StateExited {
		return rec, nil
	}
	after := ""
	if rec.StartedAt != nil && rec.ExitedAt != nil {
		after = " " + rec.ExitedAt.Sub(*rec.StartedAt).Round(time.Millisecond).String() + " after its start"
	}
	msg := fmt.Sprintf("%s exited%s: it %s", ids.Safe(rec.ID), after, cli.ExitPhrase(rec.WorkerExit, ""))
	if tail := strings.TrimRight(rec.LogTail, "\n"); tail != "" {
		lines := strings.Split(tail, "\n")
		lines = lines[max(0, len(lines)-5):]
		msg += "\n  its last output:\n    " + ids.CleanLines(strings.Join(lines, "\n    "), 4096)
	}
	return rec, fmt.Errorf("%s\n  rbee-hive logs %s shows the rest", msg, ids.Safe(rec.ID))
}

func listCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("list", "rbee-hive list [flags]",
		"Lists the hive's running workers with their latest telemetry; --all adds the exited ones,\n"+
			"kept with how they ended for the hive's --exited-retention or until rbee-hive rm or prune.")
	fs.Example("rbee-hive list --hive https://gpu-1:7835", "rbee-hive list --all")
	asJSON := fs.Bool("json", "", false, "print JSON instead of a table")
	all := fs.Bool("all", "", false, "also list exited workers")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	var ws []api.Worker
	if err := cli.Get(ctx, client, "/v1/workers", &ws); err != nil {
		return err
	}
	rows := make([]api.FleetWorker, len(ws))
	for i, w := range ws {
		rows[i].Worker = w
	}
	hidden := 0
	if !*all {
		rows, hidden = cli.WithoutExited(rows)
	}
	if *asJSON {
		recs := make([]api.Worker, len(rows))
		for i, r := range rows {
			recs[i] = r.Worker
		}
		return cli.PrintJSON(out, recs)
	}
	if err := cli.WorkerTable(out, rows, false); err != nil {
		return err
	}
	cli.HiddenNote(out, hidden)
	return nil
}

func rmCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("rm", "rbee-hive rm [flags] ID...",
		"Removes exited workers' records (with their exit and last output) from the hive and so from\n"+
			"the queen. A running worker is refused: stop it first.")
	fs.Example("rbee-hive rm llm-9301")
	if err := cli.ParseArgs(fs, args, -1); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return cli.Usagef("rm needs at least one worker id (rbee-hive list --all shows the exited ones)")
	}
	c, err := client()
	if err != nil {
		return err
	}
	for _, id := range fs.Args() {
		if err := c.Do(ctx, http.MethodDelete, "/v1/workers/"+url.PathEscape(id)+"/record", nil, nil); err != nil {
			return fmt.Errorf("rm %s: %w", id, err)
		}
		fmt.Fprintf(out, "%s removed\n", ids.Safe(id))
	}
	return nil
}

func pruneCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("prune", "rbee-hive prune [flags]", "Removes the records of every exited worker.")
	fs.Example("rbee-hive prune")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	var p api.Pruned
	if err := c.Do(ctx, http.MethodPost, "/v1/workers/prune", struct{}{}, &p); err != nil {
		return err
	}
	for _, id := range p.Removed {
		fmt.Fprintf(out, "%s removed\n", ids.Safe(id))
	}
	if len(p.Removed) == 0 {
		fmt.Fprintln(out, "no exited worker to remove")
	}
	return nil
}

func showCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("show", "rbee-hive show [flags] ID", "Prints one worker's record as JSON.")
	fs.Example("rbee-hive show llm-9301")
	if err := cli.ParseArgs(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usagef("show needs one worker id")
	}
	var w api.Worker
	if err := cli.Get(ctx, client, "/v1/workers/"+url.PathEscape(fs.Arg(0)), &w); err != nil {
		return err
	}
	return cli.PrintJSON(out, w)
}

func stopCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("stop", "rbee-hive stop [flags] ID...", "Stops workers: SIGTERM, SIGKILL after the hive's grace period, then the cgroup is removed.")
	fs.Example("rbee-hive stop llm-9301 llm-9302")
	if err := cli.ParseArgs(fs, args, -1); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return cli.Usagef("stop needs at least one worker id")
	}
	c, err := client()
	if err != nil {
		return err
	}
	for _, id := range fs.Args() {
		var w api.Worker
		if err := c.Do(ctx, http.MethodDelete, "/v1/workers/"+url.PathEscape(id), nil, &w); err != nil {
			return fmt.Errorf("stop %s: %w", id, err)
		}
		// How it ended: by itself on SIGTERM, or killed after the grace.
		x := w.WorkerExit
		x.Stopped = false
		fmt.Fprintf(out, "%s stopped: it %s\n", ids.Safe(id), cli.ExitPhrase(x, api.ReasonExited))
	}
	return nil
}

func infoCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("info", "rbee-hive info [flags]", "Prints the hive's settings and state: cgroup mode, whether limits are enforced and why not, GPU backend.")
	fs.Example("rbee-hive info")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	var info api.HiveInfo
	if err := cli.Get(ctx, client, "/v1/info", &info); err != nil {
		return err
	}
	return cli.PrintJSON(out, info)
}

func logsCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("logs", "rbee-hive logs [flags] ID",
		"Prints a worker's output (stdout and stderr), from the hive's --worker-log-dir: its last\n"+
			"lines, then with -f what it prints until it exits (across rotations). --previous reads\n"+
			"the run before its last restart.")
	fs.Example("rbee-hive logs -f --tail 50 llm-9301", "rbee-hive logs --previous llm-9301")
	follow := fs.Bool("f", "", false, "follow: keep printing until the worker exits or Ctrl-C")
	tail := fs.Int("tail", "", 100, "how many of the last lines to start with")
	previous := fs.Bool("previous", "", false, "the run before the last restart")
	if err := cli.ParseArgs(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usagef("logs needs one worker id")
	}
	if *tail < 1 {
		return cli.Usagef("--tail %d: want 1 or more", *tail)
	}
	c, err := client()
	if err != nil {
		return err
	}
	q := url.Values{"tail": {fmt.Sprint(*tail)}}
	if *follow {
		q.Set("follow", "true")
	}
	if *previous {
		q.Set("previous", "true")
	}
	body, err := c.Open(ctx, "/v1/workers/"+url.PathEscape(fs.Arg(0))+"/logs?"+q.Encode())
	if err != nil {
		return err
	}
	defer body.Close()
	// A worker's output may hold terminal escapes: they are shown, not
	// obeyed.
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := io.WriteString(out, ids.CleanLines(string(buf[:n]), n*3)); werr != nil {
				return werr
			}
		}
		if err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}
