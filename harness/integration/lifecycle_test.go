//go:build linux

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func hiveWorker(t *testing.T, hive *harness.Daemon, id string) api.Worker {
	t.Helper()
	var w api.Worker
	harness.Get(t, hive.URL+"/v1/workers/"+id, &w)
	return w
}

// A worker with a health check is starting until it answers, ready while
// it does, unhealthy when it stops: the queen hears each change at once
// (worker_changed) and routes only to a ready worker, saying why not.
func TestWorkerReadiness(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--interval", "1s"}})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream?types=worker_changed", harness.SSEOptions{})
	port := freePort(t)
	// The worker runs as nobody: the file it looks for must be where
	// nobody can see it.
	dir, err := os.MkdirTemp("", "rbee-health-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fail := filepath.Join(dir, "fail")
	health := &api.HealthCheck{HTTP: fmt.Sprintf("http://localhost:%d/health", port), Interval: api.Duration(200 * time.Millisecond),
		Timeout: api.Duration(150 * time.Millisecond), Failures: 2}
	spawned := time.Now()
	w := spawn(t, hive, "a", api.SpawnRequest{Args: []string{"--model", "m", "--health-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--healthy-after", "1500ms", "--fail-file", fail}, Health: health})
	if w.State != api.StateStarting || w.Health == nil || w.Health.Target != fmt.Sprintf("http://127.0.0.1:%d/health", port) {
		t.Fatalf("spawned: state %s health %+v", w.State, w.Health)
	}
	// While it loads: starting at the queen, and passed over.
	harness.WaitFor(t, 5*time.Second, func() error {
		ws := queenWorkers(t, queen, "")
		if len(ws) != 1 || ws[0].State != api.StateStarting {
			return fmt.Errorf("queen lists %+v", ws)
		}
		return nil
	})
	code, body := harness.Call(t, "GET", queen.URL+"/v1/schedule?model=m", nil)
	if code != 404 || !strings.Contains(string(body), "llm-a@"+hive.Name+" starting") {
		t.Fatalf("schedule while starting: %d %s", code, body)
	}
	// Healthy: ready, within an interval of the check, scheduled.
	harness.WaitFor(t, 10*time.Second, func() error {
		if ws := queenWorkers(t, queen, "?state=ready"); len(ws) != 1 {
			return fmt.Errorf("not ready at the queen")
		}
		return nil
	})
	t.Logf("ready at the queen %v after the spawn (healthy after 1.5 s, checks every 200 ms, heartbeat interval 1 s)", time.Since(spawned).Round(time.Millisecond))
	if took := time.Since(spawned); took > 1500*time.Millisecond+800*time.Millisecond {
		t.Errorf("ready reached the queen %v after the spawn: not at once (the interval is 1 s)", took)
	}
	var d api.Decision
	harness.Get(t, queen.URL+"/v1/schedule?model=m", &d)
	if d.Kind != "worker" || d.Worker.ID != w.ID {
		t.Fatalf("schedule when ready: %+v", d)
	}
	// Failing: unhealthy after 2 failed checks, out of the answers.
	if err := os.WriteFile(fail, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		ws := queenWorkers(t, queen, "?state=unhealthy")
		if len(ws) != 1 {
			return fmt.Errorf("not unhealthy at the queen")
		}
		// The queen knows why.
		if h := ws[0].Health; h == nil || !strings.Contains(h.LastError, "500") || h.Failures < 2 {
			return fmt.Errorf("the queen's record of the unhealthy worker: health %+v", h)
		}
		return nil
	})
	code, body = harness.Call(t, "GET", queen.URL+"/v1/schedule?model=m", nil)
	if code != 404 || !strings.Contains(string(body), "unhealthy") {
		t.Fatalf("schedule while unhealthy: %d %s", code, body)
	}
	if h := hiveWorker(t, hive, w.ID).Health; h == nil || h.Failures < 2 || !strings.Contains(h.LastError, "500") {
		t.Fatalf("hive record of the unhealthy worker: %+v", h)
	}
	os.Remove(fail)
	harness.WaitFor(t, 5*time.Second, func() error {
		if ws := queenWorkers(t, queen, "?state=ready"); len(ws) != 1 {
			return fmt.Errorf("not ready again")
		}
		return nil
	})
	// The registry answers the REST query before the stream's event has
	// reached this reader: wait for the stream, do not just read it.
	var states []string
	harness.WaitFor(t, 5*time.Second, func() error {
		states = states[:0]
		for _, e := range events.Events() {
			var c api.WorkerChanged
			if json.Unmarshal([]byte(e.Data), &c) == nil && c.Worker.ID == w.ID {
				states = append(states, string(c.Worker.State))
			}
		}
		if strings.Join(states, ",") != "ready,unhealthy,ready" {
			return fmt.Errorf("worker_changed states %v, want ready, unhealthy, ready", states)
		}
		return nil
	})
	// The hive makes no request elsewhere.
	for target, want := range map[string]string{
		"http://10.255.255.1:80/health":  "not an address of this host",
		"http://example.com/health":      "is a name",
		"http://169.254.169.254/latest/": "not an address of this host",
		"ftp://127.0.0.1/":               "want http(s)",
	} {
		code, body := harness.Call(t, "POST", hive.URL+"/v1/workers", api.SpawnRequest{Group: "llm", Instance: "x", Binary: harness.TestWorker(t),
			Health: &api.HealthCheck{HTTP: target}})
		if code != 400 || !strings.Contains(string(body), want) {
			t.Errorf("health %s: %d %s, want 400 with %q", target, code, body, want)
		}
	}
	if code, body := harness.Call(t, "POST", hive.URL+"/v1/workers", api.SpawnRequest{Group: "llm", Instance: "x", Binary: harness.TestWorker(t),
		Health: &api.HealthCheck{TCP: "127.0.0.1:1", Interval: api.Duration(time.Millisecond)}}); code != 400 || !strings.Contains(string(body), "health.interval") {
		t.Errorf("a 1 ms interval: %d %s", code, body)
	}
}

// on-failure restarts a crashing worker with backoff, keeping its id,
// cgroup and limits, until max_restarts; an OOM kill is a failure; a
// clean exit, or a stop, is not.
func TestWorkerRestartPolicy(t *testing.T) {
	queen := harness.StartQueen(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--interval", "300ms"}})
	policy := &api.RestartPolicy{Policy: api.RestartOnFailure, MaxRestarts: 3, Window: api.Duration(time.Minute),
		Backoff: api.Duration(100 * time.Millisecond), MaxBackoff: api.Duration(time.Second)}
	first := spawn(t, hive, "crash", api.SpawnRequest{Args: []string{"--model", "m", "--exit-after", "300ms", "--exit-code", "3"},
		MemoryLimit: "256Mi", Restart: policy})
	pids := map[int]bool{first.PID: true}
	var last api.Worker
	harness.WaitFor(t, 20*time.Second, func() error {
		last = hiveWorker(t, hive, first.ID)
		if last.State != api.StateExited {
			pids[last.PID] = true
		}
		if last.RestartError == "" {
			return fmt.Errorf("restarts %d, state %s", last.Restarts, last.State)
		}
		return nil
	})
	if last.Restarts != 3 || !strings.Contains(last.RestartError, "3 restarts within 1m0s") || last.LastExit == nil ||
		last.LastExit.ExitCode == nil || *last.LastExit.ExitCode != 3 || last.Cgroup != first.Cgroup || *last.MemLimitBytes != 256<<20 {
		t.Fatalf("after the restart limit: %+v", last)
	}
	if len(pids) < 3 {
		t.Errorf("saw %d pids over the restarts, want a new process each time", len(pids))
	}
	// The queen saw the restarts: worker_added carries the count.
	harness.WaitFor(t, 5*time.Second, func() error {
		for _, w := range queenWorkers(t, queen, "") {
			if w.ID == first.ID && w.State == api.StateExited && w.Restarts == 3 && w.RestartError != "" {
				return nil
			}
		}
		return fmt.Errorf("queen: %+v", queenWorkers(t, queen, ""))
	})

	// An OOM kill is a failure: restarted once, then the limit.
	oom := spawn(t, hive, "oom", api.SpawnRequest{Args: []string{"--mem", "256Mi"}, MemoryLimit: "64Mi",
		Restart: &api.RestartPolicy{Policy: api.RestartOnFailure, MaxRestarts: 1, Backoff: api.Duration(100 * time.Millisecond)}})
	harness.WaitFor(t, 20*time.Second, func() error {
		if last = hiveWorker(t, hive, oom.ID); last.RestartError == "" {
			return fmt.Errorf("restarts %d", last.Restarts)
		}
		return nil
	})
	if last.Restarts != 1 || last.LastExit == nil || last.LastExit.OOMKilled == nil || !*last.LastExit.OOMKilled {
		t.Fatalf("OOM-killed worker: %+v", last)
	}

	// A clean exit under on-failure, and a stop under always: no restart.
	clean := spawn(t, hive, "clean", api.SpawnRequest{Args: []string{"--exit-after", "200ms"}, Restart: policy})
	svc := spawn(t, hive, "svc", api.SpawnRequest{Args: []string{"--model", "m"},
		Restart: &api.RestartPolicy{Policy: api.RestartAlways, Backoff: api.Duration(100 * time.Millisecond)}})
	if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+svc.ID, nil); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	time.Sleep(time.Second)
	for _, w := range []api.Worker{clean, svc} {
		if got := hiveWorker(t, hive, w.ID); got.State != api.StateExited || got.Restarts != 0 || got.PID != w.PID {
			t.Errorf("%s restarted: %+v", w.ID, got)
		}
	}
	if code, body := harness.Call(t, "POST", hive.URL+"/v1/workers", api.SpawnRequest{Group: "llm", Instance: "x", Binary: harness.TestWorker(t),
		Restart: &api.RestartPolicy{Policy: "sometimes"}}); code != 400 || !strings.Contains(string(body), "restart.policy") {
		t.Errorf("a bad policy: %d %s", code, body)
	}
}

// dirBytes sums the sizes of the files in dir whose names start with
// prefix.
func dirBytes(t *testing.T, dir, prefix string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}

var rateRE = regexp.MustCompile(`wrote (\d+) bytes in \S+ \((\d+) MiB/s\)`)

// A worker's output goes to a bounded, rotated log: a worker printing
// 1 GiB as fast as it can is not slowed and keeps the disk use bounded;
// the logs are read through the API (tail, follow across a rotation,
// previous run); an exit carries the end of the output to the queen.
func TestWorkerLogs(t *testing.T) {
	queen := harness.StartQueen(t)
	logDir := t.TempDir()
	const maxSize, files = 1 << 20, 2
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, Args: []string{"--interval", "300ms",
		"--worker-log-dir", logDir, "--worker-log-max-size", "1Mi", "--worker-log-files", "2"}})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream?types=worker_removed", harness.SSEOptions{})

	// Without the hive: the same worker writing to a file of its own.
	direct := filepath.Join(t.TempDir(), "direct.log")
	f, err := os.Create(direct)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(harness.TestWorker(t), "--print-bytes", "1Gi", "--exit-after", "1ms")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("direct run: %v %s", err, stderr.String())
	}
	f.Close()
	os.Remove(direct)
	m := rateRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("direct run: %s", stderr.String())
	}
	directRate, _ := strconv.Atoi(m[2])

	// Under the hive, with its log bounded at 1 MiB x 2 files. The rate
	// report goes to a file too: the log may have dropped it.
	rdir, err := os.MkdirTemp("", "rbee-report-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rdir) })
	os.Chmod(rdir, 0o777)
	report := filepath.Join(rdir, "rate")
	w := spawn(t, hive, "chatty", api.SpawnRequest{Args: []string{"--print-bytes", "1Gi", "--report-file", report, "--model", "m"}})
	var peak int64
	var hiveRate int
	harness.WaitFor(t, 60*time.Second, func() error {
		peak = max(peak, dirBytes(t, logDir, w.ID+".log"))
		b, err := os.ReadFile(report)
		if err != nil {
			return fmt.Errorf("still writing")
		}
		m := rateRE.FindStringSubmatch(string(b))
		if m == nil {
			return fmt.Errorf("report %q", b)
		}
		if n, _ := strconv.Atoi(m[1]); n != 1<<30 {
			t.Fatalf("the worker wrote %d bytes of 1 GiB: %s", n, m[0])
		}
		hiveRate, _ = strconv.Atoi(m[2])
		return nil
	})
	if code, body := harness.Call(t, "GET", hive.URL+"/v1/workers/"+w.ID+"/logs?tail=3", nil); code != 200 || !strings.Contains(string(body), "testworker output line") {
		t.Fatalf("logs?tail=3: %d %q", code, body)
	}
	// At rest the bound holds; while the worker writes faster than the
	// hive copies, at most 4 times the file size plus a wake's worth.
	var final int64
	harness.WaitFor(t, 5*time.Second, func() error {
		if final = dirBytes(t, logDir, w.ID+".log"); final > maxSize*files+64<<10 {
			return fmt.Errorf("the logs hold %d bytes after the writes, bound %d", final, maxSize*files)
		}
		return nil
	})
	t.Logf("1 GiB of output: %d MiB/s alone, %d MiB/s under the hive (%.2f); log files peaked at %.1f MiB, %.1f MiB after (bound %d MiB x %d files; checked at each write, inotify)",
		directRate, hiveRate, float64(hiveRate)/float64(directRate), float64(peak)/(1<<20), float64(final)/(1<<20), maxSize>>20, files)
	if peak > 256<<20 {
		t.Errorf("the logs peaked at %d MiB while the worker wrote 1 GiB: not bounded", peak>>20)
	}
	if float64(hiveRate) < 0.3*float64(directRate) {
		t.Errorf("the hive slowed the worker's output to %d MiB/s from %d", hiveRate, directRate)
	}

	// Follow across rotations: ticks of 1000 bytes every 5 ms rotate the
	// 1 MiB log every few seconds.
	tick := spawn(t, hive, "tick", api.SpawnRequest{Args: []string{"--tick", "5ms"}})
	body, err := (&apiclient.Client{Base: hive.URL, Token: harness.Token}).Open(context.Background(), "/v1/workers/"+tick.ID+"/logs?follow=true&tail=1")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	var maxTick int
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	deadline := time.Now().Add(30 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "tick %d", &n); err == nil {
			seen[n], maxTick = true, max(maxTick, n)
		}
		if _, err := os.Stat(filepath.Join(logDir, tick.ID+".log.1")); err == nil && maxTick > 1500 {
			break
		}
	}
	body.Close()
	missing := 0
	for n := maxTick - 1200; n <= maxTick; n++ {
		if !seen[n] {
			missing++
		}
	}
	t.Logf("followed %d ticks up to %d across rotations; %d of the last 1200 missing", len(seen), maxTick, missing)
	if maxTick < 1500 || missing > 20 {
		t.Fatalf("follow: up to tick %d, %d of the last 1200 missing", maxTick, missing)
	}
	// HEAD of a follow ends (its body would be discarded for ever): the
	// connection then serves the next request.
	one := &http.Transport{MaxConnsPerHost: 1}
	defer one.CloseIdleConnections()
	hc := &http.Client{Transport: one, Timeout: 10 * time.Second}
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		req, _ := http.NewRequest(m, hive.URL+"/v1/workers/"+tick.ID+"/logs?tail=1", nil)
		if m == http.MethodHead {
			req.URL.RawQuery = "follow=true"
		}
		req.Header.Set("Authorization", "Bearer "+harness.Token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s after a HEAD of a follow, on one connection: %v", m, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", m, resp.StatusCode)
		}
	}

	// A crash's last lines reach the queen.
	crash := spawn(t, hive, "crash", api.SpawnRequest{Args: []string{"--say", "fatal: CUDA out of memory (a test)", "--exit-after", "300ms", "--exit-code", "1"},
		Restart: &api.RestartPolicy{Policy: api.RestartOnFailure, MaxRestarts: 1, Backoff: api.Duration(100 * time.Millisecond)}})
	ev, _ := events.WaitFor(20*time.Second, 0, func(e harness.Event) bool {
		var r api.WorkerRemoved
		return json.Unmarshal([]byte(e.Data), &r) == nil && r.WorkerID == crash.ID && strings.Contains(r.LogTail, "fatal: CUDA out of memory")
	})
	t.Logf("worker_removed: %.200s", ev.Data)
	// The restart moved the first run's log to previous.
	harness.WaitFor(t, 20*time.Second, func() error {
		if hiveWorker(t, hive, crash.ID).RestartError == "" {
			return fmt.Errorf("not at its restart limit yet")
		}
		return nil
	})
	code, prev := harness.Call(t, "GET", hive.URL+"/v1/workers/"+crash.ID+"/logs?previous=true", nil)
	if code != 200 || !strings.Contains(string(prev), "fatal: CUDA out of memory") {
		t.Fatalf("previous run's log: %d %s", code, prev)
	}
	for q, want := range map[string]int{"tail=0": 400, "tail=x": 400, "follow=maybe": 400, "since=1h": 400} {
		if code, body := harness.Call(t, "GET", hive.URL+"/v1/workers/"+crash.ID+"/logs?"+q, nil); code != want {
			t.Errorf("logs?%s: %d %s, want %d", q, code, body, want)
		}
	}
	if code, _ := harness.Call(t, "GET", hive.URL+"/v1/workers/llm-nope/logs", nil); code != 404 {
		t.Errorf("logs of an unknown worker: %d", code)
	}
	if code, _ := harness.Call(t, "GET", hive.URL+"/v1/workers/nope/logs", nil); code != 400 {
		t.Errorf("logs of an id that is no worker id: %d", code)
	}
}

// A hive that restarts adopts its workers as they were asked to run: the
// health check goes on (and takes a failing worker out of ready), the
// restart policy restarts one that dies, and the kept request is gone
// once the worker is over. The request is applied only to the process it
// was written for.
func TestAdoptedWorkerKeepsHealthAndRestart(t *testing.T) {
	parent := harness.CgroupParent(t)
	state := t.TempDir()
	opts := harness.HiveOptions{CgroupParent: parent, Env: []string{"RBEE_STATE_DIR=" + state}, Args: []string{"--interval", "200ms"}}
	hive := harness.StartHive(t, opts)
	port := freePort(t)
	dir, err := os.MkdirTemp("", "rbee-health-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	fail := filepath.Join(dir, "fail")
	health := &api.HealthCheck{HTTP: fmt.Sprintf("http://127.0.0.1:%d/health", port), Interval: api.Duration(200 * time.Millisecond),
		Timeout: api.Duration(150 * time.Millisecond), Failures: 2}
	restart := &api.RestartPolicy{Policy: api.RestartOnFailure, Backoff: api.Duration(100 * time.Millisecond)}
	w := spawn(t, hive, "kept", api.SpawnRequest{Args: []string{"--model", "m", "--health-addr", fmt.Sprintf("127.0.0.1:%d", port), "--fail-file", fail},
		Health: health, Restart: restart})
	kept := filepath.Join(state, "workers", w.ID+".json")
	if st, err := os.Stat(kept); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kept spawn request %s: %v", kept, err)
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if got := hiveWorker(t, hive, w.ID); got.State != api.StateReady {
			return fmt.Errorf("state %s", got.State)
		}
		return nil
	})
	hive.Stop()

	// The next hive adopts it with its check and policy.
	hive = harness.StartHive(t, opts)
	var got api.Worker
	harness.WaitFor(t, 10*time.Second, func() error {
		got = hiveWorker(t, hive, w.ID)
		if got.PID != w.PID || got.State != api.StateReady || got.Health == nil || got.Health.CheckedAt == nil {
			return fmt.Errorf("adopted: pid %d state %s health %+v", got.PID, got.State, got.Health)
		}
		return nil
	})
	if got.Health.Target != health.HTTP || len(got.Args) != 6 {
		t.Fatalf("adopted record %+v", got)
	}
	os.WriteFile(fail, nil, 0o644)
	harness.WaitFor(t, 5*time.Second, func() error {
		if got = hiveWorker(t, hive, w.ID); got.State != api.StateUnhealthy {
			return fmt.Errorf("state %s, want unhealthy", got.State)
		}
		return nil
	})
	os.Remove(fail)
	// Killed from outside: restarted under the same id, a new process.
	if err := syscall.Kill(w.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, func() error {
		got = hiveWorker(t, hive, w.ID)
		if got.Restarts != 1 || got.PID == w.PID || got.State == api.StateExited {
			return fmt.Errorf("after the kill: restarts %d pid %d state %s", got.Restarts, got.PID, got.State)
		}
		return nil
	})
	// Stopped: over for good, and its kept request with it.
	if code, body := harness.Call(t, "DELETE", hive.URL+"/v1/workers/"+w.ID, nil); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	if _, err := os.Stat(kept); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stopped worker's request is still kept: %v", err)
	}
}
