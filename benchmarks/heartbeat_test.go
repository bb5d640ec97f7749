package benchmarks

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	gojson "github.com/goccy/go-json"
	segjson "github.com/segmentio/encoding/json"

	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/httpx"
	"github.com/rbee-dev/rbee/internal/registry"
)

// decoders are the JSON decoders BenchmarkHeartbeatDecode compares; the
// queen uses segmentio (httpx.DecodeFast). Built with
// GOEXPERIMENT=jsonv2, encoding/json/v2 joins them.
var decoders = map[string]func([]byte, any) error{
	"encoding-json": json.Unmarshal,
	"segmentio":     segjson.Unmarshal,
	"goccy":         gojson.Unmarshal,
	// What the queen runs: segmentio after reading the body into a pooled
	// buffer and checking its nesting depth.
	"decodefast": func(body []byte, v any) error {
		r := httptest.NewRequest("POST", "/v1/hive-heartbeat", bytes.NewReader(body))
		return httpx.DecodeFast(httptest.NewRecorder(), r, api.MaxHeartbeatBody, v)
	},
}

// steadyHeartbeat is a 100-worker hive's heartbeat after its first: the
// numbers only, as the hive sends them every second.
func steadyHeartbeat(b *testing.B) (first, steady []byte) {
	h := loadgen.NewHive("gpu-node-1", 100, 8)
	f, err := json.Marshal(h.Next())
	if err != nil {
		b.Fatal(err)
	}
	s, err := json.Marshal(h.Next())
	if err != nil {
		b.Fatal(err)
	}
	return f, s
}

// BenchmarkHeartbeatDecode decodes one steady 100-worker heartbeat with
// each candidate decoder: the queen's largest cost per heartbeat.
func BenchmarkHeartbeatDecode(b *testing.B) {
	_, body := steadyHeartbeat(b)
	for _, name := range []string{"encoding-json", "segmentio", "decodefast", "goccy", "jsonv2"} {
		dec, ok := decoders[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var hb api.Heartbeat
				if err := dec(body, &hb); err != nil {
					b.Fatal(err)
				}
				if len(hb.Workers) != 100 {
					b.Fatalf("%d workers decoded", len(hb.Workers))
				}
			}
		})
	}
	// As the queen decodes: into a pooled heartbeat whose memory the last
	// one left (api.Heartbeat.Reset), the general way and the fast way
	// (api.Heartbeat.UnmarshalFast, which httpx.DecodeFast tries first).
	for _, tc := range []struct {
		name string
		dec  func(*api.Heartbeat) error
	}{
		{"segmentio-reused", func(hb *api.Heartbeat) error { return segjson.Unmarshal(body, hb) }},
		{"fast-reused", func(hb *api.Heartbeat) error {
			if !hb.UnmarshalFast(body, segjson.Unmarshal) {
				return errors.New("declined")
			}
			return nil
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			hb := new(api.Heartbeat)
			for b.Loop() {
				hb.Reset()
				if err := tc.dec(hb); err != nil || len(hb.Workers) != 100 {
					b.Fatalf("%d workers decoded, %v", len(hb.Workers), err)
				}
			}
		})
	}
}

// BenchmarkHeartbeatPayloadSize reports the size of a 100-worker hive's
// heartbeat as JSON and gzipped (as it travels): the first of a session,
// with every worker's static fields, and the steady one, numbers only
// (seed target: < 100 KB; ours: ≤ 24 KB JSON steady). The time is the
// hive's cost to encode and compress one steady heartbeat, as it does
// (apiclient.Gzip).
func BenchmarkHeartbeatPayloadSize(b *testing.B) {
	first, steady := steadyHeartbeat(b)
	gz := func(p []byte) int {
		z, err := apiclient.Gzip(p)
		if err != nil {
			b.Fatal(err)
		}
		return len(z)
	}
	h := loadgen.NewHive("gpu-node-1", 100, 8)
	h.Next()
	hb := h.Next()
	for b.Loop() {
		if _, _, err := loadgen.Encode(hb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(first)), "first-json-B")
	b.ReportMetric(float64(gz(first)), "first-gzip-B")
	b.ReportMetric(float64(len(steady)), "steady-json-B")
	b.ReportMetric(float64(gz(steady)), "steady-gzip-B")
}

// BenchmarkRegistryIngest is the queen's registry work for one steady
// 100-worker heartbeat, decoded: validation, merge with what it holds,
// events (with a stream client attached, so telemetry events are built).
func BenchmarkRegistryIngest(b *testing.B) {
	h := loadgen.NewHive("gpu-node-1", 100, 8)
	r := registry.New(registry.Config{HeartbeatRate: 1e9, HeartbeatBurst: 1e9, Telemetry: func() bool { return true }})
	if _, err := r.Ingest(h.Next()); err != nil {
		b.Fatal(err)
	}
	hbs := make([]api.Heartbeat, 64)
	for i := range hbs {
		hbs[i] = h.Next()
	}
	i := 0
	for b.Loop() {
		hb := hbs[i%len(hbs)]
		hb.Seq = uint64(1000 + i)
		hb.Workers = append([]api.WorkerReport(nil), hb.Workers...)
		res, err := r.Ingest(hb)
		if err != nil || res.NeedStatic || len(res.Fixes.Dropped) > 0 {
			b.Fatalf("heartbeat %d: %v %+v", i, err, res)
		}
		i++
	}
}
