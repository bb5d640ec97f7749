package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// streamEvents are what the fake queen's stream sends: one of each kind a
// user sees, with a model name that tries to drive the terminal.
func streamEvents(t *testing.T) []string {
	t.Helper()
	at := time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)
	m, evil := "llama-3-8b", "evil\x1b]0;owned\x07"
	code, kill, yes := 2, "SIGKILL", true
	ev := func(id, typ string, v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("id: %s\nevent: %s\ndata: %s\n\n", id, typ, b)
	}
	w := api.Worker{ID: "llm-30", PID: 4242, State: api.StateStarting, WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "30", Model: &m}}
	bad := api.Worker{ID: "llm-31", PID: 4343, State: api.StateReady, WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "31", Model: &evil}}
	ready := w
	ready.State = api.StateReady
	gaveUp := w
	gaveUp.State, gaveUp.RestartError = api.StateExited, "not restarted: 3 restarts within 10m0s (restart.max_restarts)"
	hive := api.Hive{ID: "gpu-07", Workers: []api.Worker{w}}
	return []string{
		ev("1-1", api.EventSnapshot, api.Snapshot{Hives: []api.Hive{hive, {ID: "gpu-08"}}}),
		ev("1-2", api.EventHiveOnline, api.HiveOnline{HiveID: "gpu-09", HiveURL: "https://gpu-09:7835", Restarted: true, Hive: api.Hive{Workers: []api.Worker{w, bad}}}),
		ev("1-3", api.EventWorkerAdded, api.WorkerAdded{HiveID: "gpu-07", At: at, Worker: bad}),
		ev("1-4", api.EventHiveTelemetry, api.HiveTelemetry{HiveID: "gpu-07", At: at, Node: api.NodeStats{CPUPct: api.Ptr(12.5)}}),
		ev("1-5", api.EventWorkerChanged, api.WorkerChanged{HiveID: "gpu-07", At: at, Worker: ready}),
		ev("1-6", api.EventWorkerRemoved, api.WorkerRemoved{HiveID: "gpu-07", At: at, WorkerID: "llm-30", Reason: api.ReasonExited,
			Signal: &kill, OOMKilled: &yes, LogTail: "loading weights\nline 2\nline 3\nline 4\nline 5\nCUDA out of memory\x1b[31m\nKilled\n"}),
		ev("1-7", api.EventWorkerRemoved, api.WorkerRemoved{HiveID: "gpu-07", At: at, WorkerID: "llm-31", Reason: api.ReasonStopped, Signal: new(string)}),
		ev("1-8", api.EventWorkerRemoved, api.WorkerRemoved{HiveID: "gpu-08", At: at, WorkerID: "embed-1", Reason: api.ReasonExited, ExitCode: &code}),
		ev("1-9", api.EventWorkerChanged, api.WorkerChanged{HiveID: "gpu-07", At: at, Worker: gaveUp}),
		ev("1-10", api.EventHiveStale, api.HiveGone{HiveID: "gpu-08", LastSeen: at}),
		ev("1-11", api.EventHiveRemoved, api.HiveGone{HiveID: "gpu-08", LastSeen: at, Reason: "ttl", WorkerIDs: []string{"embed-2"}}),
		ev("1-12", api.EventQueen, api.QueenSummary{Version: "v1.2.0", UptimeS: 3725, Hives: 3, Stale: 1, Workers: 4}),
	}
}

// A fake queen whose stream sends the events, then ends as a queen that
// stops would; the next connection gets a resync snapshot and stays.
func watchQueen(t *testing.T) (url string, queries *[]string) {
	t.Helper()
	events := streamEvents(t)
	var conns atomic.Int32
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got = append(got, r.URL.RawQuery)
		w.Header().Set("Content-Type", "text/event-stream")
		if conns.Add(1) == 1 {
			w.Write([]byte(strings.Join(events, "")))
			return
		}
		w.Write([]byte("id: 2-1\nevent: snapshot\ndata: {\"resync\":true,\"hives\":[]}\n\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &got
}

var clockRE = regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3} `)

// watch says each event in words, as the dashboard does (an exit with
// the end of the worker's output; terminal escapes defused); says when
// the queen is lost and back; --json prints objects, one a line; the
// filters reach the stream's query.
func TestWatchCommand(t *testing.T) {
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	local := time.Local
	time.Local = time.UTC // the golden's "no heartbeat since" clock
	t.Cleanup(func() { time.Local = local })
	watch := func(url string, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		var out bytes.Buffer
		if err := watchCmd(ctx, &out, append([]string{"--queen", url}, args...)); err != nil {
			t.Fatalf("watch %v: %v", args, err)
		}
		return out.String()
	}
	url, _ := watchQueen(t)
	out := clockRE.ReplaceAllString(watch(url, "--telemetry"), "")
	out = strings.ReplaceAll(out, url, "QUEEN")
	out = regexp.MustCompile(`after [0-9.]+m?s`).ReplaceAllString(out, "after T")
	harness.Golden(t, filepath.Join("testdata", "golden", "watch.txt"), []byte(out))

	url, _ = watchQueen(t)
	if out := watch(url); strings.Contains(out, "hive gpu-07: cpu") || strings.Contains(out, "queen v1.2.0") {
		t.Errorf("watch without --telemetry printed telemetry:\n%s", out)
	}

	url, queries := watchQueen(t)
	out = watch(url, "--json", "--hive", "gpu-07,gpu-08", "--model", "llama-3-8b", "--types", "worker_removed,snapshot")
	if (*queries)[0] != "hive=gpu-07%2Cgpu-08&model=llama-3-8b&types=worker_removed%2Csnapshot" {
		t.Errorf("the filters reached the stream as %q", (*queries)[0])
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 13 { // 12 events and the resync; no connection line on stdout
		t.Fatalf("--json: %d lines, want 13:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var e struct {
			Time time.Time
			Type string
			ID   string
			Data json.RawMessage
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Type == "" || e.Time.IsZero() || len(e.Data) == 0 {
			t.Errorf("--json line %q: %+v %v", l, e, err)
		}
	}

	// With several queens, one that does not answer is passed over.
	url, _ = watchQueen(t)
	if out := watch("http://127.0.0.1:1," + url); !strings.Contains(out, "watching "+url) || !strings.Contains(out, "connected: 2 hives") {
		t.Fatalf("watch with a dead first queen: %q", out)
	}
}

// queen-rbee top --once prints one frame of the fleet's running workers
// and exits, for scripts; a bad --sort is a usage error.
func TestTopOnce(t *testing.T) {
	url, _ := fakeQueen(t)
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	var out bytes.Buffer
	if err := topCmd(context.Background(), &out, []string{"--queen", url, "--once", "--sort", "mem"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rbee top  " + url, "1 running on 2 hives, 2 exited", "sort: mem", "gpu-1     llm-9301"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("top --once lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("top --once wrote terminal control:\n%q", out.String())
	}
	if err := topCmd(context.Background(), &out, []string{"--queen", url, "--once", "--sort", "size"}); err == nil || !strings.Contains(err.Error(), "want cpu, mem") {
		t.Errorf("--sort size: %v", err)
	}
}
