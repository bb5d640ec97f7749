package hive_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/hive"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func TestMain(m *testing.M) { harness.Main(m) }

type hiveUnderTest struct {
	s      *hive.Server
	url    string
	binDir string
	cgm    cgroups.Manager
}

func newHive(t *testing.T, mut func(*hive.Config)) *hiveUnderTest {
	t.Helper()
	parent := harness.CgroupParent(t)
	cc := cgroups.Config{Parent: parent}
	p := monitor.DetectPlatform(cc)
	if p.Cgroups == nil {
		t.Fatalf("cgroups: %s", p.NoCgroupsReason)
	}
	binDir := t.TempDir()
	b, err := os.ReadFile(harness.TestWorker(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(binDir, "worker"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := hive.Config{HiveID: "h", Workers: monitor.Config{Platform: p, StopGrace: 2 * time.Second}, BinDir: binDir,
		Tokens: auth.Tokens{Operator: harness.Token, Reader: readToken},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mut != nil {
		mut(&cfg)
	}
	s, err := hive.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Monitor().StopAll(ctx); err != nil {
			t.Error(err)
		}
		s.Monitor().Close()
	})
	cgm, _ := cgroups.New(cc)
	return &hiveUnderTest{s: s, url: srv.URL, binDir: binDir, cgm: cgm}
}

func (h *hiveUnderTest) spec(inst string) api.SpawnRequest {
	return api.SpawnRequest{Group: "llm", Instance: inst, Binary: filepath.Join(h.binDir, "worker"), Args: []string{"--model", "m"}, MemoryLimit: "64Mi"}
}

func TestHiveAPIEndpoints(t *testing.T) {
	h := newHive(t, nil)
	code, body := harness.Call(t, "POST", h.url+"/v1/workers", h.spec("9301"))
	if code != 201 {
		t.Fatalf("spawn: %d %s", code, body)
	}
	var rec api.Worker
	if err := json.Unmarshal(body, &rec); err != nil || rec.ID != "llm-9301" || rec.PID <= 0 || *rec.Model != "m" || *rec.MemLimitBytes != 64<<20 {
		t.Fatalf("spawn answer %s (%v)", body, err)
	}
	var list []api.Worker
	harness.Get(t, h.url+"/v1/workers", &list)
	if len(list) != 1 || list[0].ID != rec.ID {
		t.Fatalf("list %+v", list)
	}
	var one api.Worker
	harness.Get(t, h.url+"/v1/workers/llm-9301", &one)
	if one.PID != rec.PID {
		t.Fatalf("get %+v", one)
	}
	var info api.HiveInfo
	harness.Get(t, h.url+"/v1/info", &info)
	if info.HiveID != "h" || !info.LimitsEnforced || info.CgroupMode == string(cgroups.ModeNone) || info.GPUBackend != "none" || info.Workers != 1 || info.WorkerBinDir == "" {
		t.Fatalf("info %+v", info)
	}
	code, body = harness.Call(t, "DELETE", h.url+"/v1/workers/llm-9301", nil)
	if code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	var stopped api.Worker
	_ = json.Unmarshal(body, &stopped)
	if stopped.State != api.StateExited || stopped.ExitCode == nil && stopped.Signal == nil {
		t.Fatalf("stopped record %s", body)
	}
	if rels, _ := h.cgm.List(); len(rels) != 0 {
		t.Fatalf("cgroups left after stop: %v", rels)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/workers/llm-nope", 404},
		{"DELETE", "/v1/workers/llm-nope", 404},
		{"GET", "/v1/nothing", 404},
		{"PUT", "/v1/workers", 405},
		{"GET", "/healthz", 200},
	} {
		if code, body := harness.Call(t, tc.method, h.url+tc.path, nil); code != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
		}
	}
}

func TestHiveAPIRejectsBadInput(t *testing.T) {
	h := newHive(t, nil)
	if code, body := harness.Call(t, "POST", h.url+"/v1/workers", h.spec("keep")); code != 201 {
		t.Fatalf("spawn: %d %s", code, body)
	}
	outside := harness.TestWorker(t) // executable, but not under --worker-bin-dir
	link := filepath.Join(h.binDir, "sneaky")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	noexec := filepath.Join(h.binDir, "notes.txt")
	os.WriteFile(noexec, []byte("x"), 0o644)
	js := func(mut func(*api.SpawnRequest)) []byte {
		s := h.spec("x")
		mut(&s)
		b, _ := json.Marshal(s)
		return b
	}
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write([]byte(`{"group":"`))
	zw.Write(bytes.Repeat([]byte("a"), 16<<20))
	zw.Close()
	tests := []struct {
		name     string
		body     []byte
		encoding string
		want     int
		says     string
	}{
		{"malformed JSON", []byte(`{"group": "llm",`), "", 400, "malformed JSON"},
		{"empty body", nil, "", 400, "empty"},
		{"not an object", []byte(`[1,2]`), "", 400, "malformed JSON"},
		{"trailing data", []byte(`{"group":"llm"} {}`), "", 400, "data after"},
		{"unknown field", []byte(`{"group":"llm","instance":"x","binary":"/bin/true","cpu_limt":"50%"}`), "", 400, "cpu_limt"},
		{"bad cpu limit", js(func(s *api.SpawnRequest) { s.CPULimit = "fast" }), "", 400, "cpu_limit"},
		{"zero cpu limit", js(func(s *api.SpawnRequest) { s.CPULimit = "0" }), "", 400, "cpu_limit"},
		{"negative memory", js(func(s *api.SpawnRequest) { s.MemoryLimit = "-1Gi" }), "", 400, "memory_limit"},
		{"dotdot group", js(func(s *api.SpawnRequest) { s.Group = ".." }), "", 400, "group"},
		{"path instance", js(func(s *api.SpawnRequest) { s.Instance = "../../etc" }), "", 400, "instance"},
		{"relative binary", js(func(s *api.SpawnRequest) { s.Binary = "worker" }), "", 400, "absolute"},
		{"missing binary", js(func(s *api.SpawnRequest) { s.Binary = filepath.Join(h.binDir, "gone") }), "", 400, "gone"},
		{"not executable", js(func(s *api.SpawnRequest) { s.Binary = noexec }), "", 400, "not executable"},
		{"outside bin dir", js(func(s *api.SpawnRequest) { s.Binary = outside }), "", 403, "outside --worker-bin-dir"},
		{"link out of bin dir", js(func(s *api.SpawnRequest) { s.Binary = link }), "", 403, "symbolic link"},
		{"loader variable", js(func(s *api.SpawnRequest) { s.Env = map[string]string{"LD_PRELOAD": "./evil.so"} }), "", 400, "LD_PRELOAD"},
		{"control characters in the model", js(func(s *api.SpawnRequest) { s.Args = []string{"--model", "a\x1b]0;pwned\x07"} }), "", 400, "model name"},
		{"relative dir", js(func(s *api.SpawnRequest) { s.Dir = "tmp" }), "", 400, "dir"},
		{"duplicate", js(func(s *api.SpawnRequest) { s.Instance = "keep" }), "", 409, "already running"},
		{"huge body", append([]byte(`{"group":"`), bytes.Repeat([]byte("a"), 2<<20)...), "", 413, "larger than"},
		{"gzip bomb", bomb.Bytes(), "gzip", 413, "larger than"},
		{"bad gzip", []byte("not gzip"), "gzip", 400, "gzip"},
		{"unknown encoding", []byte(`{}`), "br", 415, "only gzip"},
		{"env with =", js(func(s *api.SpawnRequest) { s.Env = map[string]string{"A=B": "c"} }), "", 400, "env"},
		{"too many args", js(func(s *api.SpawnRequest) { s.Args = make([]string, 300) }), "", 400, "args"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.url+"/v1/workers", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			resp, err := harness.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb struct{ Error string }
			_ = json.NewDecoder(resp.Body).Decode(&eb)
			if resp.StatusCode != tc.want || !strings.Contains(eb.Error, tc.says) {
				t.Fatalf("%d %q, want %d naming %q", resp.StatusCode, eb.Error, tc.want, tc.says)
			}
		})
	}
	// Nothing changed: one worker, one cgroup, the hive still answers.
	var list []api.Worker
	harness.Get(t, h.url+"/v1/workers", &list)
	if len(list) != 1 || list[0].ID != "llm-keep" {
		t.Fatalf("workers after bad input: %+v", list)
	}
	if rels, _ := h.cgm.List(); len(rels) != 1 {
		t.Fatalf("cgroups after bad input: %v", rels)
	}
}

// The hive API takes the operator token for everything and a read-only
// token for GET; nothing else, and no cross-site request.
func TestHiveAPIRoles(t *testing.T) {
	h := newHive(t, nil)
	body, _ := json.Marshal(h.spec("x"))
	tests := []struct {
		name, method, path, token, ctype, origin string
		want                                     int
	}{
		{"no token", "GET", "/v1/workers", "", "", "", 401},
		{"spawn without token", "POST", "/v1/workers", "", "application/json", "", 401},
		{"reader lists", "GET", "/v1/workers", readToken, "", "", 200},
		{"reader reads info", "GET", "/v1/info", readToken, "", "", 200},
		{"reader may not spawn", "POST", "/v1/workers", readToken, "application/json", "", 403},
		{"reader may not stop", "DELETE", "/v1/workers/llm-x", readToken, "", "", 403},
		{"text/plain spawn", "POST", "/v1/workers", harness.Token, "text/plain", "", 415},
		{"cross-site spawn", "POST", "/v1/workers", harness.Token, "application/json", "http://evil.example", 403},
		{"healthz is open", "GET", "/healthz", "", "", "", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.url+tc.path, bytes.NewReader(body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if ws := h.s.Monitor().Workers(); len(ws) != 0 {
		t.Fatalf("refused requests spawned %v", ws)
	}
}

func TestHiveRefusesUnsafeConfig(t *testing.T) {
	tok := auth.Tokens{Operator: harness.Token}
	for _, tc := range []struct {
		name string
		cfg  hive.Config
		says string
	}{
		{"no token", hive.Config{HiveID: "h"}, "operator token"},
		{"public without bin dir", hive.Config{HiveID: "h", Listen: "0.0.0.0:0", Tokens: tok}, "--worker-bin-dir"},
		{"missing bin dir", hive.Config{HiveID: "h", BinDir: "/nonexistent/bin", Tokens: tok}, "--worker-bin-dir"},
		{"world-writable bin dir", hive.Config{HiveID: "h", BinDir: "/tmp", Tokens: tok}, "writable"},
		{"token in clear to a remote queen", hive.Config{HiveID: "h", Tokens: tok, QueenURLs: []string{"http://10.0.0.1:7833"}}, "clear text"},
		{"bad hive id", hive.Config{HiveID: "a/b", Tokens: tok}, "--hive-id"},
		{"cert without key", hive.Config{HiveID: "h", Tokens: tok, TLSCert: "c.pem"}, "--tls-key"},
	} {
		if _, err := hive.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.says)
		}
	}
	// Said explicitly, plain HTTP to a remote queen is allowed.
	cfg := hive.Config{HiveID: "h", Tokens: tok, QueenURLs: []string{"http://10.0.0.1:7833"}, InsecureNoTLS: true}
	if _, err := hive.New(cfg); err != nil {
		t.Fatalf("--insecure-no-tls: %v", err)
	}
	// A worker log directory that does not exist yet is made at start,
	// not found missing at the first spawn; one that cannot be made is
	// an error at start.
	logs := filepath.Join(t.TempDir(), "a", "logs")
	if _, err := hive.New(hive.Config{HiveID: "h", Tokens: tok, LogDir: logs}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(logs); err != nil || !st.IsDir() {
		t.Fatalf("--worker-log-dir not made: %v", err)
	}
	if _, err := hive.New(hive.Config{HiveID: "h", Tokens: tok, LogDir: "/proc/self/logs"}); err == nil || !strings.Contains(err.Error(), "--worker-log-dir") {
		t.Fatalf("an impossible --worker-log-dir: %v", err)
	}
	// By default the logs go to <state-dir>/logs; where that cannot be,
	// the hive starts and says the output is discarded.
	state := t.TempDir()
	if _, err := hive.New(hive.Config{HiveID: "h", Tokens: tok, StateDir: state}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(state, "logs")); err != nil || !st.IsDir() || st.Mode().Perm()&0o027 != 0 {
		t.Fatalf("<state-dir>/logs: %v %v", st, err)
	}
	blocked := t.TempDir()
	os.WriteFile(filepath.Join(blocked, "logs"), nil, 0o600)
	var logged strings.Builder
	if _, err := hive.New(hive.Config{HiveID: "h", Tokens: tok, StateDir: blocked, Logger: slog.New(slog.NewTextHandler(&logged, nil))}); err != nil {
		t.Fatalf("an unusable default log directory refused the hive: %v", err)
	}
	if !strings.Contains(logged.String(), "workers' output is discarded") {
		t.Fatalf("no warning for an unusable default log directory: %q", logged.String())
	}
}

const readToken = "hive-test-read-token-0123456789"
