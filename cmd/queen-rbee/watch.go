package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/ids"
)

// watchOptions are watch's flags.
type watchOptions struct {
	json      bool
	telemetry bool
	query     url.Values // hive, model, types: the stream's own filters
	status    io.Writer  // where connection lines go: out, or stderr beside JSON
}

func watchCmd(ctx context.Context, out io.Writer, args []string) error {
	fs, client := clientFlags("watch", "queen-rbee watch [flags]",
		"Prints the queen's events as they happen, one line each, in words (\"worker llm-30 on gpu-07 was\n"+
			"OOM-killed (SIGKILL)\", followed by its last output), until interrupted. It says when the\n"+
			"queen is lost and when it is back; missed events are replayed, or the view resynced.\n"+
			"--json prints each event as a JSON object instead, for scripts.")
	fs.Example("queen-rbee watch --hive gpu-07,gpu-08", "queen-rbee watch --model llama-3-8b --types worker_added,worker_removed",
		"queen-rbee watch --json | jq 'select(.type == \"worker_removed\")'")
	asJSON := fs.Bool("json", "", false, "print each event as one JSON object: time, type, id and its data")
	telemetry := fs.Bool("telemetry", "", false, "also print hive_telemetry and the queen's summary (every heartbeat: many lines)")
	hive := fs.String("hive", "", "", "only these hives' events (comma-separated ids)")
	model := fs.String("model", "", "", "only the events of workers serving this model")
	types := fs.String("types", "", "", "only these event types (comma-separated): snapshot, hive_online, hive_stale, hive_removed,\nworker_added, worker_changed, worker_removed, hive_telemetry, queen")
	if err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	o := watchOptions{json: *asJSON, telemetry: *telemetry || *types != "", query: url.Values{}, status: out}
	if o.json {
		o.status = os.Stderr // stdout stays one JSON object a line
	}
	for k, v := range map[string]string{"hive": *hive, "model": *model, "types": *types} {
		if v != "" {
			o.query.Set(k, v)
		}
	}
	// The stream never ends: the client's whole-request timeout must not
	// apply, its TLS settings (--ca) must.
	hc := *c.HTTP
	hc.Timeout = 0
	bases := c.Bases()
	for i := 0; ; i++ {
		base := bases[i%len(bases)]
		if len(bases) > 1 {
			statusLine(o.status, "watching "+ids.Safe(base))
		}
		err := watchOne(ctx, out, &hc, base, c.Token, o, len(bases) > 1)
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return nil
		}
		if len(bases) == 1 {
			return err
		}
		// Several queens: the next one, after a pause once round all.
		statusLine(o.status, ids.Safe(base)+": "+ids.Safe(err.Error()))
		if (i+1)%len(bases) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// statusLine prints a line about the connection, not an event.
func statusLine(w io.Writer, s string) {
	fmt.Fprintf(w, "%s %s\n", time.Now().Format("15:04:05.000"), s)
}

// watchOne prints base's stream until it ends; with failover, it gives
// up on a queen after a few failed reconnects so the next can be tried.
func watchOne(ctx context.Context, out io.Writer, hc *http.Client, base, token string, o watchOptions, failover bool) error {
	u := base + "/v1/heartbeats/stream"
	if len(o.query) > 0 {
		u += "?" + o.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	backoff := sse.Backoff{MaxInterval: 5 * time.Second}
	if failover {
		// Another queen waits: give up on this one within about a second.
		backoff = sse.Backoff{InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxRetries: 2}
	}
	cs := &connState{w: o.status, base: ids.Safe(base)}
	conn := (&sse.Client{HTTPClient: hc, Backoff: backoff, OnRetry: cs.lost, ResponseValidator: cs.answered}).NewConnection(req)
	conn.Buffer(nil, 256<<20) // the snapshot of a large fleet is one large event
	conn.SubscribeToAll(func(e sse.Event) {
		if !o.telemetry && (e.Type == api.EventHiveTelemetry || e.Type == api.EventQueen) {
			return
		}
		printEvent(out, e, o.json)
	})
	return conn.Connect()
}

// printEvent writes one event: in words, or as a JSON object.
func printEvent(out io.Writer, e sse.Event, asJSON bool) {
	now := time.Now()
	if asJSON {
		data := json.RawMessage(e.Data)
		if !json.Valid(data) {
			data, _ = json.Marshal(e.Data)
		}
		b, _ := json.Marshal(struct {
			Time time.Time       `json:"time"`
			Type string          `json:"type"`
			ID   string          `json:"id,omitempty"`
			Data json.RawMessage `json:"data"`
		}{now, e.Type, e.LastEventID, data})
		fmt.Fprintf(out, "%s\n", b)
		return
	}
	text, ok := cli.EventText(e.Type, []byte(e.Data))
	if !ok {
		text = fmt.Sprintf("%s %s", ids.Safe(e.Type), ids.Safe(e.Data))
	}
	fmt.Fprintf(out, "%s %s\n", now.Format("15:04:05.000"), text)
}

// connState says when the stream is lost and when it is back, once
// each: the client retries on its own.
type connState struct {
	w    io.Writer
	base string

	mu        sync.Mutex
	lostSince time.Time // zero while connected
}

// lost is the client's OnRetry: the connection failed, and it will try
// again after delay.
func (c *connState) lost(err error, delay time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lostSince.IsZero() {
		return
	}
	c.lostSince = time.Now()
	why := err.Error()
	if i := strings.LastIndex(why, ": "); i >= 0 && len(why)-i < 80 {
		why = why[i+2:] // "connection refused", not the whole request
	}
	statusLine(c.w, fmt.Sprintf("lost the queen at %s (%s); retrying…", c.base, ids.Safe(why)))
}

// answered is the client's ResponseValidator (its error ends the watch):
// a connection made after a loss is said as such before its events.
func (c *connState) answered(r *http.Response) error {
	if err := sse.DefaultValidator(r); err != nil {
		if r.StatusCode == http.StatusUnauthorized || r.StatusCode == http.StatusForbidden {
			return fmt.Errorf("the queen refused the token (%s): watch takes the read-only token or the operator's", r.Status)
		}
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lostSince.IsZero() {
		statusLine(c.w, fmt.Sprintf("back: reconnected to %s after %s", c.base, time.Since(c.lostSince).Round(100*time.Millisecond)))
		c.lostSince = time.Time{}
	}
	return nil
}
