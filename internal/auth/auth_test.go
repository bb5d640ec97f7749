package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

const (
	opTok   = "operator-token-0123456789"
	readTok = "reader-token-0123456789"
	hiveTok = "hive-a-token-0123456789"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, body string
		mode       os.FileMode
		want       string // "" means an error containing err
		err        string
	}{
		{"ok", "  " + opTok + "\n", 0o600, opTok, ""},
		{"group-readable", opTok, 0o640, "", "chmod 600"},
		{"world-readable", opTok, 0o644, "", "chmod 600"},
		{"empty", "\n", 0o600, "", "empty"},
		{"short", "abc", 0o600, "", "shorter"},
		{"spaces", "abc def ghi jkl mno", 0o600, "", "white space"},
		{"control", "abcdefgh\x1bijklmnopq", 0o600, "", "printable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadTokenFile(write(tc.name, tc.body, tc.mode))
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("= %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one containing %q", err, tc.err)
			}
		})
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing token file accepted")
	}
}

func TestLoadTokenFromEnv(t *testing.T) {
	t.Setenv(EnvToken, "")
	if _, err := LoadToken(""); !errors.Is(err, ErrNoToken) {
		t.Fatalf("no token: %v", err)
	}
	t.Setenv(EnvToken, opTok)
	if tok, err := LoadToken(""); err != nil || tok != opTok {
		t.Fatalf("env token %q, %v", tok, err)
	}
	t.Setenv(EnvToken, "short")
	if _, err := LoadToken(""); err == nil {
		t.Fatal("short env token accepted")
	}
}

// A daemon without a token creates one, private, in its state dir; a
// second daemon (and the clients) find the same one, even when both start
// at the same moment.
func TestOperatorTokenGenerated(t *testing.T) {
	t.Setenv(EnvToken, "")
	dir := filepath.Join(t.TempDir(), "state")
	var wg sync.WaitGroup
	toks := make([]string, 8)
	srcs := make([]Source, 8)
	for i := range toks {
		wg.Go(func() {
			var err error
			toks[i], srcs[i], err = OperatorToken("", dir)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	created := 0
	for i := range toks {
		if toks[i] != toks[0] || len(toks[i]) < 32 {
			t.Fatalf("tokens differ or are short: %q", toks)
		}
		if srcs[i].Created {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d daemons say they created the token, want 1", created)
	}
	st, err := os.Stat(filepath.Join(dir, TokenFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st.Mode(), err)
	}
	if d, _ := os.Stat(dir); d.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, want 0700", d.Mode().Perm())
	}
	if tok, err := ClientToken("", dir); err != nil || tok != toks[0] {
		t.Fatalf("client token %q, %v", tok, err)
	}
	if _, err := ClientToken("", t.TempDir()); !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "--token-file") {
		t.Fatalf("client without a token: %v", err)
	}
	// An explicit file wins over the state dir.
	f := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(f, []byte(readTok), 0o600)
	if tok, src, err := OperatorToken(f, dir); err != nil || tok != readTok || src.Path != f {
		t.Fatalf("token file: %q %+v %v", tok, src, err)
	}
}

func TestLoadHiveTokens(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hives")
	os.WriteFile(p, []byte("# hive tokens\n\ngpu-a "+hiveTok+"\ngpu-b hive-b-token-0123456789\n"), 0o600)
	m, err := LoadHiveTokens(p)
	if err != nil || len(m) != 2 || m["gpu-a"] != hiveTok {
		t.Fatalf("= %v, %v", m, err)
	}
	for name, body := range map[string]string{
		"bad id":    "../x " + hiveTok + "\n",
		"one field": "gpu-a\n",
		"dup":       "gpu-a " + hiveTok + "\ngpu-a hive-b-token-0123456789\n",
		"short":     "gpu-a abc\n",
	} {
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := LoadHiveTokens(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	os.WriteFile(p, []byte("gpu-a "+hiveTok+"\n"), 0o644)
	os.Chmod(p, 0o644)
	if _, err := LoadHiveTokens(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable hive tokens: %v", err)
	}
}

func testGuard(t *testing.T, cfg GuardConfig) http.Handler {
	t.Helper()
	g, err := NewGuard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := PrincipalOf(r.Context())
		w.Header().Set("X-Role", p.Role.String()+"/"+p.HiveID)
		w.WriteHeader(204)
	})
	mux.Handle("GET /v1/hives", g.Allow(NeedRead, ok))
	mux.Handle("GET /v1/heartbeats/stream", g.Allow(NeedRead, ok))
	mux.Handle("POST /v1/workers", g.Allow(NeedOperator, ok))
	mux.Handle("POST /v1/hive-heartbeat", g.Allow(NeedHeartbeat, ok))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	return g.Handler(mux)
}

func TestGuard(t *testing.T) {
	h := testGuard(t, GuardConfig{
		Tokens:       Tokens{Operator: opTok, Reader: readTok, Hives: map[string]string{"gpu-a": hiveTok}},
		AllowedHosts: []string{"queen.example"},
		Open:         []string{"/healthz"}, QueryToken: []string{"/v1/heartbeats/stream"},
	})
	type hdr = map[string]string
	ctJSON := "application/json"
	tests := []struct {
		name, method, target string
		h                    hdr
		want                 int
		role                 string
	}{
		{"no token", "GET", "/v1/hives", nil, 401, ""},
		{"wrong token", "GET", "/v1/hives", hdr{"Authorization": "Bearer nope-nope-nope-nope"}, 401, ""},
		{"prefix of the token", "GET", "/v1/hives", hdr{"Authorization": "Bearer " + opTok[:10]}, 401, ""},
		{"operator", "GET", "/v1/hives", hdr{"Authorization": "Bearer " + opTok}, 204, "operator/"},
		{"bearer in lower case", "GET", "/v1/hives", hdr{"Authorization": "bearer " + opTok}, 204, "operator/"},
		{"basic scheme", "GET", "/v1/hives", hdr{"Authorization": "Basic " + opTok}, 401, ""},
		{"reader reads", "GET", "/v1/hives", hdr{"Authorization": "Bearer " + readTok}, 204, "read-only/"},
		{"reader may not spawn", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + readTok, "Content-Type": ctJSON}, 403, ""},
		{"reader may not heartbeat", "POST", "/v1/hive-heartbeat", hdr{"Authorization": "Bearer " + readTok, "Content-Type": ctJSON}, 403, ""},
		{"hive heartbeats", "POST", "/v1/hive-heartbeat", hdr{"Authorization": "Bearer " + hiveTok, "Content-Type": ctJSON}, 204, "hive/gpu-a"},
		{"hive may not read", "GET", "/v1/hives", hdr{"Authorization": "Bearer " + hiveTok}, 403, ""},
		{"hive may not spawn", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + hiveTok, "Content-Type": ctJSON}, 403, ""},
		{"operator spawns", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + opTok, "Content-Type": ctJSON}, 204, "operator/"},
		{"json with charset", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + opTok, "Content-Type": "application/json; charset=utf-8"}, 204, "operator/"},
		{"text/plain body", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + opTok, "Content-Type": "text/plain"}, 415, ""},
		{"form body", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + opTok, "Content-Type": "application/x-www-form-urlencoded"}, 415, ""},
		{"no content type", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + opTok}, 415, ""},
		{"foreign origin", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + opTok, "Content-Type": ctJSON, "Origin": "http://evil.example"}, 403, ""},
		{"null origin", "GET", "/v1/hives", hdr{"Authorization": "Bearer " + opTok, "Origin": "null"}, 403, ""},
		{"own origin", "POST", "/v1/workers", hdr{"Authorization": "Bearer " + opTok, "Content-Type": ctJSON, "Origin": "http://127.0.0.1:7833"}, 204, "operator/"},
		{"rebound host", "GET", "/v1/hives", hdr{"Authorization": "Bearer " + opTok, "Host": "evil.example:7833"}, 403, ""},
		{"allowed host", "GET", "/v1/hives", hdr{"Authorization": "Bearer " + opTok, "Host": "Queen.Example:7833"}, 204, "operator/"},
		{"localhost", "GET", "/v1/hives", hdr{"Authorization": "Bearer " + opTok, "Host": "localhost:7833"}, 204, "operator/"},
		{"query token on the stream", "GET", "/v1/heartbeats/stream?access_token=" + readTok, nil, 204, "read-only/"},
		{"operator token in a URL", "GET", "/v1/heartbeats/stream?access_token=" + opTok, nil, 401, ""},
		{"hive token in a URL", "GET", "/v1/heartbeats/stream?access_token=" + hiveTok, nil, 401, ""},
		{"query token elsewhere", "GET", "/v1/hives?access_token=" + opTok, nil, 401, ""},
		{"query token on a POST", "POST", "/v1/workers?access_token=" + opTok, hdr{"Content-Type": ctJSON}, 401, ""},
		{"healthz is open", "GET", "/healthz", nil, 204, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://127.0.0.1:7833"+tc.target, strings.NewReader("{}"))
			for k, v := range tc.h {
				if k == "Host" {
					r.Host = v
					continue
				}
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tc.want)
			}
			if tc.role != "" && w.Header().Get("X-Role") != tc.role {
				t.Fatalf("role %q, want %q", w.Header().Get("X-Role"), tc.role)
			}
			var eb api.ErrorBody
			if w.Code >= 400 && (json.Unmarshal(w.Body.Bytes(), &eb) != nil || eb.Error == "") {
				t.Fatalf("error body %q is not JSON with an error", w.Body)
			}
			// A real token in a URL is told why, so a dashboard can say so.
			if strings.HasSuffix(tc.name, "token in a URL") && !strings.Contains(w.Body.String(), "may not travel in a URL") {
				t.Fatalf("body %q does not say why", w.Body)
			}
		})
	}
}

func TestGuardInsecureStillChecksSites(t *testing.T) {
	h := testGuard(t, GuardConfig{Insecure: true})
	r := httptest.NewRequest("POST", "http://127.0.0.1:7833/v1/workers", strings.NewReader("{}"))
	r.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 415 {
		t.Fatalf("insecure text/plain: %d", w.Code)
	}
	r = httptest.NewRequest("POST", "http://127.0.0.1:7833/v1/workers", strings.NewReader("{}"))
	r.Header.Set("Content-Type", "application/json")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 204 {
		t.Fatalf("insecure operator: %d", w.Code)
	}
}

func TestNewGuardRefuses(t *testing.T) {
	if _, err := NewGuard(GuardConfig{}); !errors.Is(err, ErrNoToken) {
		t.Fatalf("no token: %v", err)
	}
	if _, err := NewGuard(GuardConfig{Tokens: Tokens{Operator: opTok, Reader: opTok}}); err == nil {
		t.Fatal("the same token for two roles accepted")
	}
	if _, err := NewGuard(GuardConfig{Tokens: Tokens{Operator: "short"}}); err == nil {
		t.Fatal("short operator token accepted")
	}
}

func TestPrincipalDefault(t *testing.T) {
	if p := PrincipalOf(context.Background()); p.Role != RoleNone {
		t.Fatalf("no principal: %v", p.Role)
	}
}

func TestCheckTransport(t *testing.T) {
	tests := []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://10.0.0.1:7833", false, true},
		{"http://127.0.0.1:7833", false, true},
		{"http://[::1]:7833", false, true},
		{"http://localhost:7833", false, true},
		{"http://10.0.0.1:7833", false, false},
		{"http://queen.example:7833", false, false},
		{"http://10.0.0.1:7833", true, true},
		{"ftp://10.0.0.1", true, false},
	}
	for _, tc := range tests {
		err := CheckTransport(tc.url, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("CheckTransport(%s, %v) = %v", tc.url, tc.insecure, err)
		}
		if !tc.ok && tc.insecure == false && strings.HasPrefix(tc.url, "http:") && !errors.Is(err, ErrClearText) {
			t.Errorf("CheckTransport(%s): %v is not ErrClearText", tc.url, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for listen, want := range map[string]bool{"127.0.0.1:7833": true, "[::1]:1": true, "localhost:0": true, "0.0.0.0:7833": false, ":7833": false, "10.0.0.5:1": false} {
		if IsLoopback(listen) != want {
			t.Errorf("IsLoopback(%q) != %v", listen, want)
		}
	}
}

func FuzzParseHiveTokens(f *testing.F) {
	f.Add("# tokens\ngpu-a " + hiveTok + "\n\ngpu-b hive-b-token-0123456789\n")
	f.Add("../x " + hiveTok)
	f.Add("gpu-a\tshort\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := parseHiveTokens(strings.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		for id, tok := range m {
			if err := ids.ValidHiveID(id); err != nil {
				t.Fatalf("accepted hive id %q", id)
			}
			if checkToken(tok) != nil {
				t.Fatalf("accepted token %q", tok)
			}
		}
		if _, err := (Tokens{Operator: opTok, Hives: m}).index(); err != nil && !strings.Contains(err.Error(), "same token") {
			t.Fatalf("parsed tokens do not index: %v", err)
		}
	})
}
