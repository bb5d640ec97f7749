//go:build linux

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
)

// A client that connects to a fleet already running gets one snapshot
// first, with every hive and its workers' full records; then compact
// telemetry: rows of numbers, no static field.
func TestStreamSnapshotFirstThenCompactTelemetry(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--interval", "300ms"}})
	a := spawn(t, hive, "a", api.SpawnRequest{Args: []string{"--model", "m1", "--mem", "32Mi"}, MemoryLimit: "128Mi"})
	b := spawn(t, hive, "b", api.SpawnRequest{Args: []string{"--model", "m2"}})
	harness.WaitFor(t, 10*time.Second, func() error {
		if n := len(queenWorkers(t, queen, "")); n != 2 {
			return fmt.Errorf("%d workers", n)
		}
		return nil
	})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{})
	first, _ := events.WaitFor(5*time.Second, 0, func(harness.Event) bool { return true })
	if first.Type != api.EventSnapshot {
		t.Fatalf("first event %s, want snapshot", first.Type)
	}
	var snap api.Snapshot
	if err := first.Decode(&snap); err != nil || snap.Resync || len(snap.Hives) != 1 || len(snap.Hives[0].Workers) != 2 {
		t.Fatalf("snapshot %s (%v)", first.Data, err)
	}
	for _, w := range []api.Worker{a, b} {
		got, ok := first.Worker(w.ID)
		if !ok || got.PID != w.PID || got.Model == nil || got.Binary == "" || len(got.Args) == 0 || got.StartedAt == nil {
			t.Fatalf("snapshot record of %s: %+v", w.ID, got)
		}
	}
	if snap.Hives[0].SessionID != "" {
		t.Fatal("the snapshot shows the hive's session id to stream readers")
	}
	// Telemetry once worker a holds the 32 MiB it was told to.
	ev, _ := events.WaitFor(10*time.Second, 1, isEvent(api.EventHiveTelemetry, func(h api.HiveTelemetry) bool {
		return len(h.Workers) > 0 && h.Workers[0].Stats[api.StatMemBytes] >= 32<<20
	}))
	var tel api.HiveTelemetry
	if err := ev.Decode(&tel); err != nil || len(tel.Workers) != 2 || tel.SentAt.IsZero() || tel.At.Before(tel.SentAt.Add(-time.Second)) {
		t.Fatalf("hive_telemetry %s (%v)", ev.Data, err)
	}
	if strings.Join(tel.StatFields, ",") != strings.Join(api.TelemetryStats, ",") || strings.Join(tel.WorkerFields, ",") != "id,state,stats,gpus" {
		t.Fatalf("fields %v %v", tel.WorkerFields, tel.StatFields)
	}
	// Static fields travel in the snapshot and worker events only.
	for _, static := range []string{`"args"`, `"binary"`, `"cgroup"`, `"started_at"`, `"mem_limit_bytes"`, `"model"`} {
		if strings.Contains(ev.Data, static) {
			t.Fatalf("hive_telemetry carries %s: %s", static, ev.Data)
		}
	}
	// A row: [id, state, [cpu %, mem, rss, working set, read/s, write/s]].
	var rows struct {
		Workers [][]json.RawMessage `json:"workers"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &rows); err != nil || len(rows.Workers[0]) != 3 {
		t.Fatalf("worker rows %s (%v)", ev.Data, err)
	}
	if tel.Workers[0].ID != a.ID || tel.Workers[0].State != api.StateReady || tel.Workers[0].Stats[api.StatMemBytes] < 32<<20 {
		t.Fatalf("row of %s: %+v", a.ID, tel.Workers[0])
	}
}

// Event ids are unique across queen restarts: a client that comes back
// with an id of the old queen gets a snapshot marked resync (never the
// new queen's unrelated event of the same number, never nothing); one
// that comes back with an id the queen still holds gets what it missed,
// and no snapshot.
func TestStreamResyncAfterQueenRestart(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--interval", "300ms"}})
	w := spawn(t, hive, "w", api.SpawnRequest{Args: []string{"--model", "m"}})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream?types=snapshot,hive_online,worker_added,worker_removed", harness.SSEOptions{})
	ev, _ := events.WaitFor(10*time.Second, 0, harness.Brings(w.ID))
	stale := ev.ID
	events.Close()

	// Resuming on the same queen: the worker events missed, no snapshot.
	x := spawn(t, hive, "x", api.SpawnRequest{Args: []string{"--model", "m"}})
	back := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream?types=snapshot,hive_online,worker_added,worker_removed", harness.SSEOptions{LastEventID: stale})
	got, _ := back.WaitFor(10*time.Second, 0, addedOf(x.ID))
	if evs := back.Events(); evs[0].Type == api.EventSnapshot || got.ID == stale {
		t.Fatalf("resume from %s on the same queen: %s first", stale, evs[0].Type)
	}
	back.Close()

	queen.Stop()
	queen.Restart()
	harness.WaitFor(t, 10*time.Second, func() error {
		if n := len(queenWorkers(t, queen, "")); n != 2 {
			return fmt.Errorf("%d workers after the restart", n)
		}
		return nil
	})
	again := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{LastEventID: stale})
	first, _ := again.WaitFor(10*time.Second, 0, func(harness.Event) bool { return true })
	var snap api.Snapshot
	if first.Type != api.EventSnapshot || first.Decode(&snap) != nil || !snap.Resync || len(snap.Hives) != 1 || len(snap.Hives[0].Workers) != 2 {
		t.Fatalf("after the restart, Last-Event-ID %s got %s %s, want a resync snapshot of the fleet", stale, first.Type, first.Data)
	}
	oldEpoch, _, _ := strings.Cut(stale, "-")
	newEpoch, _, _ := strings.Cut(first.ID, "-")
	if oldEpoch == newEpoch {
		t.Fatalf("event ids %s and %s share an epoch across a queen restart", stale, first.ID)
	}
}

// ?hive=, ?model= and ?types= give a client only what it shows, the
// snapshot included; a model filter sees only that model's workers in
// each hive's telemetry.
func TestStreamFilters(t *testing.T) {
	queen := harness.StartQueen(t)
	ha := harness.StartHive(t, harness.HiveOptions{ID: "fa", Queen: queen.URL, Args: []string{"--interval", "300ms"}})
	hb := harness.StartHive(t, harness.HiveOptions{ID: "fb", Queen: queen.URL, Args: []string{"--interval", "300ms"}})
	spawn(t, ha, "1", api.SpawnRequest{Args: []string{"--model", "m1"}})
	spawn(t, ha, "2", api.SpawnRequest{Args: []string{"--model", "m2"}})
	spawn(t, hb, "3", api.SpawnRequest{Args: []string{"--model", "m2"}})
	harness.WaitFor(t, 10*time.Second, func() error {
		if n := len(queenWorkers(t, queen, "")); n != 3 {
			return fmt.Errorf("%d workers", n)
		}
		return nil
	})
	url := queen.URL + "/v1/heartbeats/stream"
	byHive := harness.Subscribe(t, url+"?hive=fb", harness.SSEOptions{})
	byModel := harness.Subscribe(t, url+"?model=m1", harness.SSEOptions{})
	byType := harness.Subscribe(t, url+"?types=worker_added,worker_removed", harness.SSEOptions{})

	// The snapshot: one hive; every hive but only m1's worker.
	var snap api.Snapshot
	ev, _ := byHive.WaitType(5*time.Second, 0, api.EventSnapshot)
	if ev.Decode(&snap); len(snap.Hives) != 1 || snap.Hives[0].ID != "fb" || len(snap.Hives[0].Workers) != 1 {
		t.Fatalf("?hive=fb snapshot %s", ev.Data)
	}
	ev, _ = byModel.WaitType(5*time.Second, 0, api.EventSnapshot)
	snap = api.Snapshot{}
	if ev.Decode(&snap); len(snap.Hives) != 2 {
		t.Fatalf("?model=m1 snapshot %s", ev.Data)
	}
	for _, h := range snap.Hives {
		for _, w := range h.Workers {
			if *w.Model != "m1" {
				t.Fatalf("?model=m1 snapshot has %s (%s)", w.ID, *w.Model)
			}
		}
	}
	// Telemetry: only fb's for the hive filter; for the model filter only
	// fa's (fb serves no m1), with m1's worker alone.
	tel := func(c *harness.SSEClient) api.HiveTelemetry {
		ev, _ := c.WaitType(5*time.Second, 0, api.EventHiveTelemetry)
		var h api.HiveTelemetry
		if err := ev.Decode(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := tel(byHive); h.HiveID != "fb" {
		t.Fatalf("?hive=fb got telemetry of %s", h.HiveID)
	}
	if h := tel(byModel); h.HiveID != "fa" || len(h.Workers) != 1 || h.Workers[0].ID != "llm-1" {
		t.Fatalf("?model=m1 telemetry %+v", h)
	}
	// Types: nothing but worker events, not even the snapshot.
	spawn(t, hb, "4", api.SpawnRequest{Args: []string{"--model", "m2"}})
	byType.WaitFor(5*time.Second, 0, addedOf("llm-4"))
	time.Sleep(time.Second)
	for _, c := range []*harness.SSEClient{byHive, byModel, byType} {
		for _, e := range c.Events() {
			switch {
			case c == byType && e.Type != api.EventWorkerAdded && e.Type != api.EventWorkerRemoved:
				t.Fatalf("?types= got %s", e.Type)
			case c == byHive && strings.Contains(e.Data, `"fa"`):
				t.Fatalf("?hive=fb got %s of fa: %s", e.Type, e.Data)
			case c == byModel && e.Type == api.EventWorkerAdded && !strings.Contains(e.Data, `"model":"m1"`):
				t.Fatalf("?model=m1 got %s", e.Data)
			}
		}
	}
}

// eventSourceScript is a dashboard's client: the eventsource npm package
// (what browsers implement, for Node.js), printing one JSON line per
// event. It reconnects by itself, with Last-Event-ID, as browsers do.
const eventSourceScript = `
const { EventSource } = require('eventsource');
const es = new EventSource(process.env.RBEE_URL, {
  fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, Authorization: 'Bearer ' + process.env.RBEE_TOKEN } }),
});
const types = ['snapshot', 'hive_online', 'hive_stale', 'hive_removed', 'hive_telemetry', 'worker_added', 'worker_changed', 'worker_removed', 'queen'];
for (const type of types) {
  es.addEventListener(type, (e) => {
    const d = JSON.parse(e.data);
    console.log(JSON.stringify({ type, id: e.lastEventId, bytes: e.data.length, resync: type === 'snapshot' ? d.resync : undefined,
      hives: type === 'snapshot' ? d.hives.length : undefined }));
  });
}
es.onerror = (e) => console.log(JSON.stringify({ type: 'error', message: String(e.message || e.code || '') }));
`

// esEvent is a line eventSourceScript prints.
type esEvent struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Bytes   int    `json:"bytes"`
	Resync  *bool  `json:"resync"`
	Hives   int    `json:"hives"`
	Message string `json:"message"`
}

// A browser-grade client across a queen restart: it reconnects with the
// old queen's Last-Event-ID and gets a snapshot marked resync, never a
// silent gap; no event id repeats across the restart.
func TestStreamEventSourceClientAcrossQueenRestart(t *testing.T) {
	mods := harness.NodePackage(t, "eventsource@3.0.7")
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--interval", "300ms"}})
	spawn(t, hive, "w", api.SpawnRequest{Args: []string{"--model", "m"}})

	cmd := exec.Command("node", "-e", eventSourceScript)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "RBEE_URL="+queen.URL+"/v1/heartbeats/stream", "RBEE_TOKEN="+harness.Token)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan esEvent, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e esEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	var seen []esEvent
	await := func(what string, ok func(esEvent) bool) esEvent {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case e, open := <-lines:
				if !open {
					t.Fatalf("the eventsource client exited before %s; stderr:\n%s", what, stderr.String())
				}
				seen = append(seen, e)
				if ok(e) {
					return e
				}
			case <-deadline:
				t.Fatalf("no %s within 20s; the client saw %+v\nstderr:\n%s", what, seen, stderr.String())
			}
		}
	}
	first := await("event", func(esEvent) bool { return true })
	if first.Type != api.EventSnapshot || first.Resync == nil || *first.Resync || first.Hives != 1 {
		t.Fatalf("first event %+v, want a snapshot of one hive", first)
	}
	last := await("telemetry", func(e esEvent) bool { return e.Type == api.EventHiveTelemetry })

	queen.Stop()
	queen.Restart()
	again := await("resync snapshot", func(e esEvent) bool { return e.Type == api.EventSnapshot })
	if again.Resync == nil || !*again.Resync {
		t.Fatalf("after the restart the client resumed from %s and got %+v, want a snapshot marked resync", last.ID, again)
	}
	await("telemetry of the new queen", func(e esEvent) bool { return e.Type == api.EventHiveTelemetry })
	ids := map[string]bool{}
	for _, e := range seen {
		if e.ID == "" {
			continue
		}
		if ids[e.ID] {
			t.Fatalf("event id %s came twice across the restart: %+v", e.ID, seen)
		}
		ids[e.ID] = true
	}
}

// A hive silent past the TTL (a partition, a frozen host) is removed with
// its workers; when it speaks again, in the same session, its one
// hive_online carries every worker, as when it first joined.
func TestStreamHiveBackAfterTTL(t *testing.T) {
	queen := harness.StartQueen(t, "--hive-ttl", "2s")
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--interval", "300ms"}})
	// Subscribed first: the filter leaves the snapshot out, so a worker
	// the queen learned of before the subscription would never be seen.
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream?types=hive_online,hive_removed,worker_added", harness.SSEOptions{})
	w := spawn(t, hive, "w", api.SpawnRequest{Args: []string{"--model", "m"}})
	_, i := events.WaitFor(10*time.Second, 0, harness.Brings(w.ID))
	if err := syscall.Kill(hive.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ev, i := events.WaitFor(10*time.Second, i, isEvent(api.EventHiveRemoved, func(d api.HiveGone) bool { return true }))
	if err := syscall.Kill(hive.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var gone api.HiveGone
	if ev.Decode(&gone); len(gone.WorkerIDs) != 1 || gone.WorkerIDs[0] != w.ID {
		t.Fatalf("hive_removed %s", ev.Data)
	}
	back, _ := events.WaitFor(10*time.Second, i, isEvent(api.EventHiveOnline, func(d api.HiveOnline) bool { return true }))
	if got, ok := back.Worker(w.ID); !ok || got.PID != w.PID || got.Model == nil {
		t.Fatalf("hive_online after the TTL lacks the worker: %s", back.Data)
	}
	for _, e := range events.Events()[i:] {
		if e.Type == api.EventWorkerAdded {
			t.Fatalf("the worker came back one event at a time: %s", e.Data)
		}
	}
}
