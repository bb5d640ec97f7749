package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckBind(t *testing.T) {
	tests := []struct {
		listen, token string
		insecure      bool
		ok            bool
	}{
		{"127.0.0.1:7833", "", false, true},
		{"[::1]:7833", "", false, true},
		{"localhost:0", "", false, true},
		{"0.0.0.0:7833", "", false, false},
		{":7833", "", false, false},
		{"10.0.0.5:7833", "s3cret", false, true},
		{"0.0.0.0:7833", "", true, true},
	}
	for _, tc := range tests {
		err := CheckBind(tc.listen, tc.token, tc.insecure)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrNeedsToken) {
			t.Errorf("CheckBind(%q, %q, %v) = %v", tc.listen, tc.token, tc.insecure, err)
		}
	}
}

func TestRequire(t *testing.T) {
	h := Require("s3cret", []string{"/healthz"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	tests := []struct {
		path, header string
		want         int
	}{
		{"/v1/hives", "", 401},
		{"/v1/hives", "Bearer wrong", 401},
		{"/v1/hives", "Bearer s3cret", 204},
		{"/v1/heartbeats/stream?access_token=s3cret", "", 204},
		{"/v1/heartbeats/stream?access_token=s3cre", "", 401},
		{"/healthz", "", 204},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", tc.path, nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s with %q: %d, want %d", tc.path, tc.header, w.Code, tc.want)
		}
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	os.WriteFile(f, []byte("  abc\n"), 0o600)
	if tok, err := LoadToken(f); err != nil || tok != "abc" {
		t.Fatalf("LoadToken = %q, %v", tok, err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := LoadToken(empty); err == nil {
		t.Fatal("empty token file accepted")
	}
	if _, err := LoadToken(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing token file accepted")
	}
	t.Setenv(EnvToken, "fromenv")
	if tok, _ := LoadToken(""); tok != "fromenv" {
		t.Fatalf("env token %q", tok)
	}
}
