package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/internal/httpx"
)

// A connection is authenticated, for the listener's limits, once a
// request on it shows an accepted credential of any role (or passes the
// checks without auth); a refused or open request leaves it
// unauthenticated, evictable under a flood.
func TestGuardMarksConnection(t *testing.T) {
	tokens := Tokens{Operator: opTok, Reader: readTok, Hives: map[string]string{"gpu-a": hiveTok}}
	for _, tc := range []struct {
		name, method, path, token string
		insecure                  bool
		want                      int // unauthenticated connections after
	}{
		{"operator", "GET", "/v1/hives", opTok, false, 0},
		{"reader", "GET", "/v1/hives", readTok, false, 0},
		{"hive heartbeat", "POST", "/v1/hive-heartbeat", hiveTok, false, 0},
		{"hive token on a route it may not use", "GET", "/v1/hives", hiveTok, false, 0},
		{"wrong token", "GET", "/v1/hives", "nope-nope-nope-nope", false, 1},
		{"no token", "GET", "/v1/hives", "", false, 1},
		{"open path", "GET", "/healthz", "", false, 1},
		{"without auth", "GET", "/v1/hives", "", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testGuard(t, GuardConfig{Tokens: tokens, Insecure: tc.insecure, Open: []string{"/healthz"}})
			srv := httptest.NewUnstartedServer(h)
			srv.Config = httpx.NewServer(h, nil, slog.New(slog.DiscardHandler))
			l := httpx.NewLimited(srv.Listener, httpx.ConnLimits{Max: 4, Unauthenticated: 4})
			srv.Listener = l
			srv.Start()
			defer srv.Close()
			c := srv.Client()
			defer c.CloseIdleConnections()
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if open, unauth := l.Conns(); open != 1 || unauth != tc.want {
				t.Fatalf("after %d: %d open, %d unauthenticated; want 1, %d", resp.StatusCode, open, unauth, tc.want)
			}
		})
	}
}
