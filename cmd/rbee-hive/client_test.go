package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cli"
)

const token = "cli-test-token-0123456789"

func f(v float64) *float64 { return &v }
func u(v uint64) *uint64   { return &v }

// fakeHive answers the client commands with fixed data and records each
// request (method, path, body).
func fakeHive(t *testing.T) (string, *[]string) {
	t.Helper()
	var got []string
	m := "qwen2.5-0.5b"
	code := 0
	lim := int64(512 << 20)
	running := api.Worker{
		ID:           "llm-9301",
		PID:          4242,
		State:        api.StateReady,
		CPUPct:       f(33.3),
		MemBytes:     u(100 << 20),
		UptimeS:      f(61),
		WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "9301", Model: &m, Binary: "/opt/llm/worker", Args: []string{"--model", m}, Cgroup: "/rbee.slice/llm/9301", LimitsEnforced: true, CPULimitPct: f(150), MemLimitBytes: &lim},
	}
	stopped := running
	stopped.State, stopped.ExitCode, stopped.Stopped = api.StateExited, &code, true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(body)))
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"missing or wrong token"}`))
			return
		}
		var v any
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/workers":
			w.WriteHeader(201)
			v = running
		case r.Method == "GET" && r.URL.Path == "/v1/workers":
			v = []api.Worker{running}
		case r.Method == "GET" && r.URL.Path == "/v1/workers/llm-9301":
			v = running
		case r.Method == "DELETE" && r.URL.Path == "/v1/workers/llm-9301":
			v = stopped
		case r.Method == "GET" && r.URL.Path == "/v1/workers/llm-9301/logs":
			got[len(got)-1] += " " + r.URL.RawQuery
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("loading model\n\x1b]0;owned\x07done\n"))
			return
		case r.Method == "GET" && r.URL.Path == "/v1/info":
			v = api.HiveInfo{HiveID: "gpu-1", CgroupMode: "v2", LimitsEnforced: true, GPUBackend: "nvml", WorkerUser: "nobody (65534:65534)"}
		default:
			w.WriteHeader(404)
			w.Write([]byte(`{"error":"worker \"llm-nope\": no such worker"}`))
			return
		}
		json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &got
}

func run(t *testing.T, cmd func(context.Context, io.Writer, []string) error, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := cmd(context.Background(), &out, args)
	return out.String(), err
}

func TestHiveClientCommands(t *testing.T) {
	url, got := fakeHive(t)
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	for _, tc := range []struct {
		name string
		cmd  func(context.Context, io.Writer, []string) error
		args []string
	}{
		{"spawn", spawnCmd, []string{"--instance", "9301", "--settle", "0", "--cpu-limit", "150%", "--memory-limit", "512Mi", "--env", "CUDA_VISIBLE_DEVICES=0", "--", "/opt/llm/worker", "--model", "qwen2.5-0.5b"}},
		{"list", listCmd, nil},
		{"show", showCmd, []string{"llm-9301"}},
		{"stop", stopCmd, []string{"llm-9301"}},
		{"info", infoCmd, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.cmd, append([]string{"--hive", url}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			harness.Golden(t, filepath.Join("testdata", "golden", tc.name+".txt"), []byte(out))
		})
	}
	harness.Golden(t, filepath.Join("testdata", "golden", "requests.txt"), []byte(strings.Join(*got, "\n")+"\n"))
}

func TestHiveClientErrors(t *testing.T) {
	url, _ := fakeHive(t)
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	if _, err := run(t, showCmd, "--hive", url, "llm-nope"); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "no such worker") {
		t.Fatalf("show of a missing worker: %v", err)
	}
	for name, args := range map[string][]string{
		"spawn without a binary":   {"--hive", url, "--instance", "1"},
		"spawn without --instance": {"--hive", url, "--", "/bin/true"},
		"spawn with a bad --env":   {"--hive", url, "--instance", "1", "--env", "NOEQUALS", "--", "/bin/true"},
		"stop without an id":       {"--hive", url},
	} {
		cmd := spawnCmd
		if strings.HasPrefix(name, "stop") {
			cmd = stopCmd
		}
		if _, err := run(t, cmd, args...); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%s: %v, want a usage error", name, err)
		}
	}
}

// logs prints the worker's output with terminal escapes shown, not
// obeyed, and passes its options as parameters.
func TestLogsCommand(t *testing.T) {
	url, got := fakeHive(t)
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	out, err := run(t, logsCmd, "--hive", url, "-f", "--tail", "5", "--previous", "llm-9301")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(out, 0x1b) || !strings.Contains(out, "loading model\n") || !strings.Contains(out, "done\n") {
		t.Fatalf("output %q", out)
	}
	if last := (*got)[len(*got)-1]; last != "GET /v1/workers/llm-9301/logs follow=true&previous=true&tail=5" {
		t.Fatalf("request %q", last)
	}
	for _, args := range [][]string{{}, {"a", "b"}, {"--tail", "0", "x"}} {
		if _, err := run(t, logsCmd, append([]string{"--hive", url}, args...)...); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("logs %v: %v, want a usage error", args, err)
		}
	}
	if _, err := run(t, logsCmd, "--hive", url, "llm-nope"); err == nil || !strings.Contains(err.Error(), "no such worker") {
		t.Errorf("logs of an unknown worker: %v", err)
	}
}

// The daemon refuses a bad command line before it creates anything.
func TestDaemonRefusesBadFlags(t *testing.T) {
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	for _, args := range [][]string{
		{"--worker-log-max-size", "1K"},
		{"--worker-log-max-size", "lots"},
		{"--worker-log-files", "0"},
		{"--nonsense"},
		{"extra-argument"},
		{"--cgroup-parent", "/../../etc"},
		{"--cgroup-parent", "/"},
	} {
		if err := daemon(context.Background(), io.Discard, args); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("daemon %v: %v, want a usage error", args, err)
		}
	}
	if err := daemon(context.Background(), io.Discard, []string{"--worker-user", "no-such-user-here", "--insecure-no-auth"}); err == nil || !strings.Contains(err.Error(), "no-such-user-here") {
		t.Errorf("an unknown worker user: %v", err)
	}
}

// A worker that dies right after its spawn is said at once, with how it
// ended and its last output, and spawn fails (issue 21: it printed
// "spawned" and exited 0); one that keeps running is a plain spawn.
func TestSpawnSaysAnEarlyExit(t *testing.T) {
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	m, code := "qwen", 2
	start := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	exited := start.Add(33 * time.Millisecond)
	rec := api.Worker{ID: "llm-20", PID: 16356, State: api.StateStarting, WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "20", Model: &m, StartedAt: &start}}
	dead := rec
	dead.State, dead.WorkerExit = api.StateExited, api.WorkerExit{ExitCode: &code, ExitedAt: &exited, LogTail: "usage: worker --model M\nerror: unknown flag --prot\x1b[2J\n"}
	var gets atomic.Int32
	var dies atomic.Bool
	dies.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			w.WriteHeader(201)
			json.NewEncoder(w).Encode(rec)
			return
		}
		if gets.Add(1) > 1 && dies.Load() {
			json.NewEncoder(w).Encode(dead)
			return
		}
		json.NewEncoder(w).Encode(rec)
	}))
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	err := spawnCmd(context.Background(), &out, []string{"--hive", srv.URL, "--instance", "20", "--", "/opt/w", "--prot", "9"})
	want := "llm-20 exited 33ms after its start: it exited with code 2\n  its last output:\n    usage: worker --model M\n    error: unknown flag --prot\uFFFD[2J\n  rbee-hive logs llm-20 shows the rest"
	if err == nil || err.Error() != want || !strings.HasPrefix(out.String(), "llm-20 spawned: pid 16356") {
		t.Fatalf("spawn of a worker that dies: %q, %v\nwant the error %q", out.String(), err, want)
	}
	dies.Store(false)
	gets.Store(0)
	out.Reset()
	start2 := time.Now()
	if err := spawnCmd(context.Background(), &out, []string{"--hive", srv.URL, "--instance", "20", "--settle", "200ms", "--", "/opt/w"}); err != nil || gets.Load() < 2 {
		t.Fatalf("spawn of a worker that runs: %v after %d looks", err, gets.Load())
	}
	if took := time.Since(start2); took < 200*time.Millisecond {
		t.Fatalf("spawn returned after %v, before its --settle", took)
	}
}

// rbee-hive top --once prints one frame of the hive's running workers.
func TestTopOnce(t *testing.T) {
	url, _ := fakeHive(t)
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	var out bytes.Buffer
	if err := topCmd(context.Background(), &out, []string{"--hive", url, "--once"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rbee top  " + url, "1 running", "llm-9301     ready     33.3/150  100M/512M"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("top --once lacks %q:\n%s", want, out.String())
		}
	}
}
