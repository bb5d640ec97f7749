package benchmarks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/monitor"
)

// BenchmarkHealthCheck is one health check as the hive runs it against a
// worker on loopback: an HTTP GET (a new connection each time, as the
// hive keeps none) or a TCP connect. Its ns/op is the hive's CPU and
// wall time per worker per check; at one check a second that is the cost
// per worker per second.
func BenchmarkHealthCheck(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		h    api.HealthCheck
	}{
		{"http", api.HealthCheck{HTTP: srv.URL + "/health"}},
		{"tcp", api.HealthCheck{TCP: strings.TrimPrefix(srv.URL, "http://")}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				if err := monitor.ProbeHealth(ctx, &tc.h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
