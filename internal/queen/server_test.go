package queen_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/queen"
	"github.com/rbee-dev/rbee/internal/registry"
	"github.com/rbee-dev/rbee/internal/telemetry"
)

func TestMain(m *testing.M) { harness.Main(m) }

func newQueen(t *testing.T, cfg queen.Config) (*queen.Server, string) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := queen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(q.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := q.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return q, srv.URL
}

func f(v float64) *float64 { return &v }
func u(v uint64) *uint64   { return &v }

func beat(seq uint64) telemetry.Heartbeat {
	m := "qwen"
	return telemetry.Heartbeat{
		HiveID: "gpu-1", HiveURL: "http://10.0.0.5:7835", SessionID: "s1", Seq: seq, IntervalMS: 1000, GPUBackend: "nvml",
		Node:    telemetry.Node{GPUs: []telemetry.GPU{{Index: 0, UUID: "GPU-x", VRAMTotalBytes: u(80 << 30), VRAMUsedBytes: u(8 << 30)}}},
		Workers: []telemetry.Worker{{ID: "llm-9301", Group: "llm", Instance: "9301", PID: 42, Model: &m, State: telemetry.StateRunning, CPUPct: f(1), GPUUtilPct: f(0)}},
	}
}

func post(t *testing.T, url string, body []byte, encoding string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/hive-heartbeat", bytes.NewReader(body))
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb struct{ Error string }
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb.Error
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestQueenQueries(t *testing.T) {
	_, url := newQueen(t, queen.Config{})
	b, _ := json.Marshal(beat(1))
	if code, msg := post(t, url, gz(b), "gzip"); code != 200 {
		t.Fatalf("gzip heartbeat: %d %s", code, msg)
	}
	var hives []registry.Hive
	harness.Get(t, url+"/v1/hives", &hives)
	if len(hives) != 1 || hives[0].ID != "gpu-1" || hives[0].State != registry.StateOnline || hives[0].GPUBackend != "nvml" {
		t.Fatalf("hives %+v", hives)
	}
	var h registry.Hive
	harness.Get(t, url+"/v1/hives/gpu-1", &h)
	if len(h.Workers) != 1 {
		t.Fatalf("hive %+v", h)
	}
	var ws []registry.Worker
	harness.Get(t, url+"/v1/workers?model=qwen&idle=true&state=running", &ws)
	if len(ws) != 1 || ws[0].HiveID != "gpu-1" || !ws[0].Idle {
		t.Fatalf("workers %+v", ws)
	}
	harness.Get(t, url+"/v1/workers?model=other", &ws)
	if len(ws) != 0 {
		t.Fatalf("filtered workers %+v", ws)
	}
	var d registry.Decision
	harness.Get(t, url+"/v1/schedule?model=qwen", &d)
	if d.Kind != "worker" || d.Worker.ID != "llm-9301" || d.HiveURL != "http://10.0.0.5:7835" {
		t.Fatalf("schedule %+v", d)
	}
	harness.Get(t, url+"/v1/schedule?model=llama&vram_bytes=16Gi", &d)
	if d.Kind != "gpu" || *d.FreeVRAMBytes != 72<<30 {
		t.Fatalf("schedule by capacity %+v", d)
	}
	var info queen.Info
	harness.Get(t, url+"/v1/info", &info)
	if info.Hives != 1 || info.Heartbeats != 1 || info.AuthRequired {
		t.Fatalf("info %+v", info)
	}
	for _, tc := range []struct {
		path string
		want int
		says string
	}{
		{"/v1/hives/nope", 404, "no hive"},
		{"/v1/workers?idle=maybe", 400, "idle"},
		{"/v1/workers?state=flying", 400, "state"},
		{"/v1/schedule", 400, "model is required"},
		{"/v1/schedule?model=x&vram_bytes=lots", 400, "vram_bytes"},
		{"/v1/schedule?model=x&vram_bytes=1Ti", 404, "no placement"},
		{"/v1/nope", 404, "no such endpoint"},
	} {
		code, body := harness.Call(t, "GET", url+tc.path, nil)
		if code != tc.want || !strings.Contains(string(body), tc.says) {
			t.Errorf("GET %s: %d %s, want %d naming %q", tc.path, code, body, tc.want, tc.says)
		}
	}
	if code, _ := harness.Call(t, "DELETE", url+"/v1/hives", nil); code != 405 {
		t.Errorf("DELETE /v1/hives: %d, want 405", code)
	}
}

func TestQueenRejectsBadHeartbeats(t *testing.T) {
	q, url := newQueen(t, queen.Config{MaxBody: 64 << 10})
	good, _ := json.Marshal(beat(1))
	if code, msg := post(t, url, good, ""); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, msg)
	}
	mut := func(m func(*telemetry.Heartbeat)) []byte {
		h := beat(2)
		m(&h)
		b, _ := json.Marshal(h)
		return b
	}
	bomb := gz(append([]byte(`{"hive_id":"`), bytes.Repeat([]byte("a"), 1<<20)...))
	tests := []struct {
		name     string
		body     []byte
		encoding string
		want     int
		says     string
	}{
		{"malformed", []byte(`{"hive_id": `), "", 400, "malformed JSON"},
		{"wrong type", []byte(`{"hive_id": 5}`), "", 400, "malformed JSON"},
		{"empty", nil, "", 400, "empty"},
		{"too large", append([]byte(`{"hive_id":"`), bytes.Repeat([]byte("a"), 100<<10)...), "", 413, "larger than"},
		{"gzip bomb", bomb, "gzip", 413, "larger than"},
		{"bad gzip", []byte("plain"), "gzip", 400, "gzip"},
		{"deflate", good, "deflate", 415, "only gzip"},
		{"bad hive id", mut(func(h *telemetry.Heartbeat) { h.HiveID = "a b" }), "", 400, "hive_id"},
		{"bad worker", mut(func(h *telemetry.Heartbeat) { h.Workers[0].Instance = "../x" }), "", 400, "instance"},
		{"no session", mut(func(h *telemetry.Heartbeat) { h.SessionID = "" }), "", 400, "session_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, msg := post(t, url, tc.body, tc.encoding); code != tc.want || !strings.Contains(msg, tc.says) {
				t.Fatalf("%d %q, want %d naming %q", code, msg, tc.want, tc.says)
			}
		})
	}
	h, _ := q.Registry().Hive("gpu-1")
	if h.Seq != 1 || len(h.Workers) != 1 || h.Workers[0].PID != 42 {
		t.Fatalf("state changed by bad heartbeats: %+v", h)
	}
	if st := q.Registry().Stats(); st.Rejected != 3 {
		t.Fatalf("rejected %d, want the 3 that reached validation", st.Rejected)
	}
}

func TestQueenNeedsTokenAndSafeBind(t *testing.T) {
	_, url := newQueen(t, queen.Config{Token: "s3cret"})
	good, _ := json.Marshal(beat(1))
	if code, _ := post(t, url, good, ""); code != 401 {
		t.Fatalf("heartbeat without token: %d", code)
	}
	if code, _ := harness.Call(t, "GET", url+"/v1/heartbeats/stream", nil); code != 401 {
		t.Fatalf("stream without token: %d", code)
	}
	s := harness.Subscribe(t, url+"/v1/heartbeats/stream?access_token=s3cret", harness.SSEOptions{})
	s.Close()
	if _, err := queen.New(queen.Config{Listen: "0.0.0.0:0"}); err == nil {
		t.Fatal("public bind without token accepted")
	}
	if _, err := queen.New(queen.Config{Listen: "0.0.0.0:0", Insecure: true}); err != nil {
		t.Fatalf("--insecure-no-auth refused: %v", err)
	}
}

func TestQueenStreamsRegistryEvents(t *testing.T) {
	q, err := queen.New(queen.Config{Listen: "127.0.0.1:0", HiveTTL: 3 * time.Second, SweepEvery: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, func(a net.Addr) { addr <- a }) }()
	url := "http://" + (<-addr).String()
	s := harness.Subscribe(t, url+"/v1/heartbeats/stream", harness.SSEOptions{})
	hb := beat(1)
	hb.IntervalMS = 100
	b, _ := json.Marshal(hb)
	post(t, url, b, "")
	_, i := s.WaitType(5*time.Second, 0, registry.EventHiveOnline)
	_, i = s.WaitType(5*time.Second, i, registry.EventWorkerAdded)
	_, i = s.WaitType(5*time.Second, i, registry.EventHiveTelemetry)
	// Silent for 3 intervals: stale; then removed after the TTL.
	_, i = s.WaitType(5*time.Second, i, registry.EventHiveStale)
	_, i = s.WaitType(5*time.Second, i, registry.EventWorkerRemoved)
	s.WaitType(5*time.Second, i, registry.EventHiveRemoved)
	// Shutdown closes the open stream and returns cleanly.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel with a stream open")
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if s.Err() == nil {
			return errors.New("the stream is still open after shutdown")
		}
		return nil
	})
}
