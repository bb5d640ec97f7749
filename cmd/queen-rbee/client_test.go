package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cli"
)

const token = "cli-test-token-0123456789"

func f(v float64) *float64 { return &v }
func u(v uint64) *uint64   { return &v }

// fakeQueen answers the client commands' requests with fixed data and
// records the queries it got.
func fakeQueen(t *testing.T) (string, *[]string) {
	t.Helper()
	var got []string
	m, evil := "qwen2.5-0.5b", "evil\x1b]0;owned\x07"
	code, sig := 3, "SIGKILL"
	workers := []api.FleetWorker{
		{Worker: api.Worker{
			ID:           "llm-9301",
			PID:          4242,
			State:        api.StateReady,
			CPUPct:       f(51.26),
			MemBytes:     u(256 << 20),
			VRAMBytes:    u(4 << 30),
			GPUUtilPct:   f(97),
			UptimeS:      f(3725),
			WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "9301", Model: &m},
		},
			HiveID: "gpu-1", HiveURL: "http://10.0.0.5:7835"},
		{Worker: api.Worker{
			ID:           "llm-9302",
			PID:          4343,
			State:        api.StateExited,
			Errors:       []string{"gpu: nvidia-smi timed out after 2s"},
			WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "9302", Model: &evil, Restarts: 3, RestartError: "not restarted: 3 restarts within 10m0s (restart.max_restarts)"},
			WorkerExit:   api.WorkerExit{ExitCode: &code},
		}, HiveID: "gpu-2", HiveURL: "http://10.0.0.6:7835", Stale: true},
		{Worker: api.Worker{ID: "embed-1", PID: 77, State: api.StateExited, WorkerStatic: api.WorkerStatic{Group: "embed", Instance: "1"}, WorkerExit: api.WorkerExit{Signal: &sig, OOMKilled: new(bool)}},
			HiveID: "gpu-2", HiveURL: "http://10.0.0.6:7835", Idle: true},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.RequestURI())
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"missing or wrong token"}`))
			return
		}
		var v any
		switch r.URL.Path {
		case "/v1/hives":
			seen := time.Now().Add(-3 * time.Second)
			v = []api.Hive{
				{ID: "gpu-1", URL: "http://10.0.0.5:7835", State: api.HiveStateOnline, LastSeen: seen,
					Node: api.Node{CPUPct: f(12.5), GPUs: make([]api.GPU, 8)}, Workers: []api.Worker{workers[0].Worker}},
				{ID: "gpu-2", URL: "http://10.0.0.6:7835", State: api.HiveStateStale, LastSeen: seen},
			}
		case "/v1/workers":
			v = workers
		case "/v1/reservations/rsv-1":
			if r.Method != http.MethodDelete {
				w.WriteHeader(405)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		case "/v1/heartbeats/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("id: 7-1\nevent: snapshot\ndata: {\"resync\":false,\"hives\":[]}\n\nid: 7-2\nevent: hive_telemetry\ndata: {}\n\n"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		case "/v1/schedule":
			if r.URL.Query().Get("model") == "nope" {
				w.WriteHeader(404)
				w.Write([]byte(`{"error":"no placement: no worker serves nope"}`))
				return
			}
			if r.URL.Query().Get("model") == "big" {
				exp := time.Date(2026, 11, 29, 12, 0, 30, 0, time.UTC)
				g := []api.GPU{{Index: 2, UUID: "GPU-2", Name: "NVIDIA H200"}, {Index: 5, UUID: "GPU-5", Name: "NVIDIA H200"}}
				v = api.Decision{Kind: "gpu", HiveID: "gpu-2", HiveURL: "http://10.0.0.6:7835", GPU: &g[0], GPUs: g, FreeVRAMBytes: u(70 << 30),
					ReservationID: "rsv-0123", ExpiresAt: &exp, Reason: "every worker serving big was passed over; GPU 2, 5 of gpu-2 have the most free VRAM",
					PassedOver: []string{"llm-1@gpu-1 saturated (CPU 10.0% of 400%, GPU SM 99.0%)"}}
				break
			}
			load := api.WorkerLoad{CPUPct: f(51.3), CPUCapacityPct: 400, CPUFraction: f(0.128), GPUUtilPct: f(60), Why: "CPU 51.3% of 400%, GPU SM 60.0%"}
			v = api.Decision{Kind: "worker", Worker: &workers[0], ServeAddr: "10.0.0.5:9301", Load: &load, HiveID: "gpu-1", HiveURL: "http://10.0.0.5:7835",
				Reason: "CPU 51.3% of 400%, GPU SM 60.0%: least loaded of 2 eligible workers serving qwen2.5-0.5b"}
			if r.URL.Query().Get("all") == "true" {
				d := v.(api.Decision)
				d.Ranked = []api.RankedWorker{{FleetWorker: workers[0], ServeAddr: "10.0.0.5:9301", Load: load}, {FleetWorker: workers[1], Load: api.WorkerLoad{Idle: false, Why: "CPU not measured yet"}}}
				v = d
			}
		default:
			w.WriteHeader(404)
			return
		}
		w.Header().Set("Content-Type", "application/json")
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

// The client commands print tables (control characters escaped) and JSON
// with --json, send the token, and pass the filters as query parameters.
func TestQueenClientCommands(t *testing.T) {
	url, got := fakeQueen(t)
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	for _, tc := range []struct {
		name string
		cmd  func(context.Context, io.Writer, []string) error
		args []string
	}{
		{"hives", hivesCmd, nil},
		{"hives-json", hivesCmd, []string{"--json"}},
		{"workers", workersCmd, []string{"--model", "qwen2.5-0.5b", "--idle", "true", "--all"}},
		{"workers-running", workersCmd, nil},
		{"workers-json", workersCmd, []string{"--json"}},
		{"schedule", scheduleCmd, []string{"--model", "qwen2.5-0.5b", "--vram", "16Gi"}},
		{"schedule-all", scheduleCmd, []string{"--model", "qwen2.5-0.5b", "--all"}},
		{"schedule-placement", scheduleCmd, []string{"--model", "big", "--vram", "140Gi", "--gpus", "2"}},
		{"schedule-json", scheduleCmd, []string{"--model", "qwen2.5-0.5b", "--json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.cmd, append([]string{"--queen", url}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tc.name, "json") {
				// Timestamps move; JSON output is checked for shape only.
				var v any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, out)
				}
				return
			}
			harness.Golden(t, filepath.Join("testdata", "golden", tc.name+".txt"), []byte(out))
		})
	}
	want := []string{"/v1/hives", "/v1/hives", "/v1/workers?idle=true&model=qwen2.5-0.5b", "/v1/workers?", "/v1/workers?", "/v1/schedule?model=qwen2.5-0.5b&vram_bytes=16Gi",
		"/v1/schedule?all=true&model=qwen2.5-0.5b", "/v1/schedule?gpus=2&model=big&vram_bytes=140Gi", "/v1/schedule?model=qwen2.5-0.5b"}
	if strings.Join(*got, " ") != strings.Join(want, " ") {
		t.Fatalf("requests %q, want %q", *got, want)
	}
}

func TestQueenClientErrors(t *testing.T) {
	url, _ := fakeQueen(t)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	t.Setenv("RBEE_TOKEN", "")
	_, err := run(t, hivesCmd, "--queen", url)
	if !errors.Is(err, api.ErrUnauthorized) || !strings.Contains(err.Error(), "--token-file") {
		t.Fatalf("without a token: %v", err)
	}
	t.Setenv("RBEE_TOKEN", token)
	if _, err := run(t, scheduleCmd, "--queen", url, "--model", "nope"); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "no worker serves nope") {
		t.Fatalf("schedule of an unknown model: %v", err)
	}
	for _, args := range [][]string{{"--queen", url}, {"--queen", url, "--model", "m", "extra"}, {"--bogus"}} {
		if _, err := run(t, scheduleCmd, args...); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("schedule %v: %v, want a usage error", args, err)
		}
	}
	if _, err := run(t, hivesCmd, "--queen", "http://192.0.2.1:7833"); err == nil || !strings.Contains(err.Error(), "--insecure-no-tls") {
		t.Fatalf("token in clear text: %v", err)
	}
}

// queen-rbee dashboard prints the URL with the read-only token in the
// fragment, once the queen has taken that token in a stream URL; without
// one it still prints the URL and says why.
func TestDashboardCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/heartbeats/stream" {
			w.WriteHeader(404)
			return
		}
		if r.URL.Query().Get("access_token") != "read-token-abcdefghijklmnop" {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"the operator token may not travel in a URL (access_token): use the read-only token"}`))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	var out bytes.Buffer
	err := dashboardCmd(context.Background(), &out, []string{"--queen", srv.URL, "--state-dir", dir})
	if err == nil || !strings.Contains(err.Error(), "no read-only token at "+filepath.Join(dir, "read-token")) || out.String() != srv.URL+"/\n" {
		t.Fatalf("without a token: %q %v", out.String(), err)
	}
	if err := writeFile(filepath.Join(dir, "read-token"), "read-token-abcdefghijklmnop\n"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := dashboardCmd(context.Background(), &out, []string{"--queen", srv.URL + "/", "--state-dir", dir}); err != nil {
		t.Fatal(err)
	}
	if out.String() != srv.URL+"/#token=read-token-abcdefghijklmnop\n" {
		t.Fatalf("dashboard URL %q", out.String())
	}
	// An operator token is caught before it reaches a browser's history.
	op := filepath.Join(dir, "token")
	if err := writeFile(op, "operator-token-abcdefghijkl\n"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = dashboardCmd(context.Background(), &out, []string{"--queen", srv.URL, "--read-token-file", op})
	if err == nil || !strings.Contains(err.Error(), "may not travel in a URL") || out.Len() != 0 {
		t.Fatalf("operator token: %q %v", out.String(), err)
	}
	if err := dashboardCmd(context.Background(), &out, []string{"--queen", "ftp://x"}); err == nil {
		t.Fatal("an ftp URL was taken")
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// release frees reservations by id and says so; an unknown one is the
// queen's 404, and none is a usage error.
func TestReleaseCommand(t *testing.T) {
	url, got := fakeQueen(t)
	t.Setenv("RBEE_TOKEN", token)
	t.Setenv("RBEE_STATE_DIR", t.TempDir())
	var out bytes.Buffer
	if err := releaseCmd(context.Background(), &out, []string{"--queen", url, "rsv-1"}); err != nil || out.String() != "rsv-1 released\n" {
		t.Fatalf("release rsv-1: %q %v", out.String(), err)
	}
	if (*got)[len(*got)-1] != "/v1/reservations/rsv-1" {
		t.Fatalf("requests %q", *got)
	}
	if err := releaseCmd(context.Background(), &out, []string{"--queen", url, "rsv-nope"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("release of an unknown reservation: %v", err)
	}
	if err := releaseCmd(context.Background(), &out, []string{"--queen", url}); !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("release without an id: %v", err)
	}
}
