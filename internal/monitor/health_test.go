package monitor

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

func TestParseHealth(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    api.HealthCheck
		want string // "" means valid
	}{
		{"http loopback", api.HealthCheck{HTTP: "http://127.0.0.1:9301/health"}, ""},
		{"localhost", api.HealthCheck{HTTP: "http://localhost:9301/health"}, ""},
		{"ipv6 loopback", api.HealthCheck{HTTP: "http://[::1]:9301/health"}, ""},
		{"tcp", api.HealthCheck{TCP: "127.0.0.1:9301"}, ""},
		{"both", api.HealthCheck{HTTP: "http://127.0.0.1/", TCP: "127.0.0.1:1"}, "not both"},
		{"neither", api.HealthCheck{}, "give http"},
		{"a name", api.HealthCheck{HTTP: "http://metadata.google.internal/"}, "is a name"},
		{"elsewhere", api.HealthCheck{HTTP: "http://10.255.255.1/"}, "not an address of this host"},
		{"link-local metadata", api.HealthCheck{TCP: "169.254.169.254:80"}, "not an address of this host"},
		{"scheme", api.HealthCheck{HTTP: "file:///etc/passwd"}, "want http(s)"},
		{"credentials", api.HealthCheck{HTTP: "http://u:p@127.0.0.1/"}, "want http(s)"},
		{"tcp without port", api.HealthCheck{TCP: "127.0.0.1"}, "want host:port"},
		{"interval", api.HealthCheck{TCP: "127.0.0.1:1", Interval: api.Duration(time.Millisecond)}, "health.interval"},
		{"timeout over interval", api.HealthCheck{TCP: "127.0.0.1:1", Interval: api.Duration(time.Second), Timeout: api.Duration(2 * time.Second)}, "health.timeout"},
		{"failures", api.HealthCheck{TCP: "127.0.0.1:1", Failures: 1000}, "health.failures"},
		{"start period", api.HealthCheck{TCP: "127.0.0.1:1", StartPeriod: api.Duration(48 * time.Hour)}, "health.start_period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, err := parseHealth(&tc.h)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && (hs.interval != 5*time.Second || hs.timeout != 2*time.Second || hs.failures != 3):
				t.Fatalf("defaults %+v", hs)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrSpec)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestHealthStates(t *testing.T) {
	hs := &healthSpec{failures: 2, startPeriod: time.Minute}
	h := &workerHealth{spec: hs, state: api.StateStarting}
	start := time.Unix(0, 0)
	fail := errors.New("HTTP 503")
	steps := []struct {
		err     error
		at      time.Duration
		want    api.State
		changed bool
	}{
		{fail, time.Second, api.StateStarting, false},     // loading
		{fail, 2 * time.Second, api.StateStarting, false}, // still within its start period
		{nil, 3 * time.Second, api.StateReady, true},      // healthy
		{fail, 4 * time.Second, api.StateReady, false},    // one failure is not enough
		{fail, 5 * time.Second, api.StateUnhealthy, true}, // two in a row
		{nil, 6 * time.Second, api.StateReady, true},      // back
	}
	for i, s := range steps {
		if changed := h.note(s.err, start.Add(s.at), start); h.state != s.want || changed != s.changed {
			t.Fatalf("step %d: state %s changed %v, want %s %v", i, h.state, changed, s.want, s.changed)
		}
	}
	// Never healthy past the start period: unhealthy.
	h = &workerHealth{spec: hs, state: api.StateStarting}
	h.note(fail, start.Add(61*time.Second), start)
	if h.note(fail, start.Add(62*time.Second), start); h.state != api.StateUnhealthy || h.record().LastError != "HTTP 503" {
		t.Fatalf("past the start period: %s %+v", h.state, h.record())
	}
}

func TestHealthCheckRuns(t *testing.T) {
	code := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://10.255.255.1/", http.StatusFound)
			return
		}
		w.WriteHeader(code)
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := ProbeHealth(ctx, &api.HealthCheck{HTTP: srv.URL + "/health"}); err != nil {
		t.Fatal(err)
	}
	code = 503
	if err := ProbeHealth(ctx, &api.HealthCheck{HTTP: srv.URL + "/health"}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: %v", err)
	}
	// A redirect is a failure, never followed elsewhere.
	if err := ProbeHealth(ctx, &api.HealthCheck{HTTP: srv.URL + "/redirect"}); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("redirect: %v", err)
	}
	if err := ProbeHealth(ctx, &api.HealthCheck{TCP: strings.TrimPrefix(srv.URL, "http://")}); err != nil {
		t.Fatalf("tcp: %v", err)
	}
	if err := ProbeHealth(ctx, &api.HealthCheck{TCP: "127.0.0.1:1", Timeout: api.Duration(200 * time.Millisecond)}); err == nil {
		t.Fatal("a closed port passed")
	}
}

func TestParseRestart(t *testing.T) {
	for _, tc := range []struct {
		r    *api.RestartPolicy
		want string
	}{
		{nil, ""}, {&api.RestartPolicy{}, ""}, {&api.RestartPolicy{Policy: "never"}, ""},
		{&api.RestartPolicy{Policy: "on-failure"}, ""}, {&api.RestartPolicy{Policy: "always", MaxRestarts: 10, Window: api.Duration(time.Hour)}, ""},
		{&api.RestartPolicy{Policy: "sometimes"}, "restart.policy"},
		{&api.RestartPolicy{Policy: "always", MaxRestarts: -1}, "max_restarts"},
		{&api.RestartPolicy{Policy: "always", Window: api.Duration(time.Millisecond)}, "restart.window"},
		{&api.RestartPolicy{Policy: "always", Backoff: api.Duration(time.Minute), MaxBackoff: api.Duration(time.Second)}, "max_backoff"},
	} {
		_, err := parseRestart(tc.r)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseRestart(%+v) = %v, want %q", tc.r, err, tc.want)
		}
	}
	if !failed(nil, nil, nil) || failed(ptr(0), nil, nil) || !failed(ptr(1), nil, nil) || !failed(ptr(0), nil, ptr(true)) {
		t.Fatal("failed() misjudges an exit")
	}
}

func ptr[T any](v T) *T { return &v }

func FuzzParseHealth(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:9301/health", "http://localhost/", "http://[::1]:1/", "tcp:127.0.0.1:1", "http://10.0.0.1/", "://", "http://%zz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := api.HealthCheck{HTTP: s}
		if strings.HasPrefix(s, "tcp:") {
			h = api.HealthCheck{TCP: strings.TrimPrefix(s, "tcp:")}
		}
		hs, err := parseHealth(&h)
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("error of another class: %v", err)
			}
			return
		}
		// Whatever is taken points at this host.
		host := hs.target
		if hs.http {
			u, err := url.Parse(hs.target)
			if err != nil {
				t.Fatalf("%q taken as %q, which does not parse: %v", s, hs.target, err)
			}
			host = u.Hostname()
		} else if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if ip := net.ParseIP(host); ip == nil || !localIP(ip) {
			t.Fatalf("%q taken as %q: not this host", s, hs.target)
		}
	})
}
