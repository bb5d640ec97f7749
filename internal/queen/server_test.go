package queen_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/queen"
	"github.com/rbee-dev/rbee/internal/stream"
)

func TestMain(m *testing.M) { harness.Main(m) }

func newQueen(t *testing.T, cfg queen.Config) (*queen.Server, string) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Tokens.Operator == "" && !cfg.Insecure {
		cfg.Tokens.Operator = harness.Token
	}
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

func beat(seq uint64) api.Heartbeat {
	m := "qwen"
	return api.Heartbeat{
		HiveID: "gpu-1", HiveURL: "http://10.0.0.5:7835", SessionID: "s1", Seq: seq, IntervalMS: 1000, GPUBackend: "nvml",
		Node:    api.Node{CPUCores: 8, GPUs: []api.GPU{{Index: 0, UUID: "GPU-x", VRAMTotalBytes: u(80 << 30), VRAMUsedBytes: u(8 << 30)}}},
		Workers: reports(api.Worker{ID: "llm-9301", PID: 42, State: api.StateReady, CPUPct: f(1), GPUUtilPct: f(0), WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "9301", Model: &m}}),
	}
}

// reports are ws as a heartbeat carries them, each with its static fields.
func reports(ws ...api.Worker) []api.WorkerReport {
	out := make([]api.WorkerReport, len(ws))
	for i := range ws {
		out[i] = api.ReportOf(&ws[i], true)
	}
	return out
}

func post(t *testing.T, url string, body []byte, encoding string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/hive-heartbeat", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := harness.HTTP.Do(req)
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
	var hives []api.Hive
	harness.Get(t, url+"/v1/hives", &hives)
	if len(hives) != 1 || hives[0].ID != "gpu-1" || hives[0].State != api.HiveStateOnline || hives[0].GPUBackend != "nvml" {
		t.Fatalf("hives %+v", hives)
	}
	var h api.Hive
	harness.Get(t, url+"/v1/hives/gpu-1", &h)
	if len(h.Workers) != 1 {
		t.Fatalf("hive %+v", h)
	}
	var ws []api.FleetWorker
	harness.Get(t, url+"/v1/workers?model=qwen&idle=true&state=ready", &ws)
	if len(ws) != 1 || ws[0].HiveID != "gpu-1" || !ws[0].Idle {
		t.Fatalf("workers %+v", ws)
	}
	harness.Get(t, url+"/v1/workers?model=other", &ws)
	if len(ws) != 0 {
		t.Fatalf("filtered workers %+v", ws)
	}
	var d api.Decision
	harness.Get(t, url+"/v1/schedule?model=qwen", &d)
	if d.Kind != "worker" || d.Worker.ID != "llm-9301" || d.HiveURL != "http://10.0.0.5:7835" {
		t.Fatalf("schedule %+v", d)
	}
	harness.Get(t, url+"/v1/schedule?model=llama&vram_bytes=16Gi", &d)
	if d.Kind != "gpu" || *d.FreeVRAMBytes != 72<<30 {
		t.Fatalf("schedule by capacity %+v", d)
	}
	var info api.QueenInfo
	harness.Get(t, url+"/v1/info", &info)
	if info.Hives != 1 || info.Heartbeats != 1 || !info.AuthRequired {
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
	mut := func(m func(*api.Heartbeat)) []byte {
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
		{"bad hive id", mut(func(h *api.Heartbeat) { h.HiveID = "a b" }), "", 400, "hive_id"},
		{"no session", mut(func(h *api.Heartbeat) { h.SessionID = "" }), "", 400, "session_id"},
		{"no cores", mut(func(h *api.Heartbeat) { h.Node.CPUCores = 0 }), "", 400, "cpu_cores"},
		{"inflated pid bomb", mut(func(h *api.Heartbeat) {
			h.Workers = nil
			for i := range 5 {
				h.Workers = append(h.Workers, api.ReportOf(&api.Worker{ID: fmt.Sprintf("llm-%d", i), State: api.StateReady, PIDs: make([]int, 16000), WorkerStatic: api.WorkerStatic{Group: "llm", Instance: fmt.Sprint(i)}}, true))
				for j := range h.Workers[i].PIDs {
					h.Workers[i].PIDs[j] = j + 1
				}
			}
		}), "gzip", 413, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.encoding == "gzip" && tc.name != "bad gzip" && tc.name != "gzip bomb" {
				body = gz(body)
			}
			if code, msg := post(t, url, body, tc.encoding); code != tc.want || !strings.Contains(msg, tc.says) {
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

const (
	readToken  = "queen-test-read-token-0123456789"
	hiveAToken = "queen-test-hive-a-token-0123456789"
)

// postAs posts a heartbeat with a token (or none) and returns the status
// and the error message.
func postAs(t *testing.T, url, token string, hb api.Heartbeat) (int, string) {
	t.Helper()
	b, _ := json.Marshal(hb)
	req, _ := http.NewRequest("POST", url+"/v1/hive-heartbeat", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Error
}

// Each role does what it may and nothing more: a hive token speaks for
// its own hive only, a reader reads (without the session ids), and
// nothing works without a token.
func TestQueenRoles(t *testing.T) {
	q, url := newQueen(t, queen.Config{Tokens: auth.Tokens{Operator: harness.Token, Reader: readToken,
		Hives: map[string]string{"gpu-a": hiveAToken}}})
	a := beat(1)
	a.HiveID = "gpu-a"
	if code, msg := postAs(t, url, hiveAToken, a); code != 200 {
		t.Fatalf("hive token for its own hive: %d %s", code, msg)
	}
	victim := beat(1)
	if code, _ := postAs(t, url, harness.Token, victim); code != 200 {
		t.Fatalf("operator heartbeat: %d", code)
	}
	forged := beat(math.MaxUint64)
	forged.HiveURL = "http://attacker.example:7835"
	if code, msg := postAs(t, url, hiveAToken, forged); code != 403 || !strings.Contains(msg, "gpu-a") {
		t.Fatalf("hive token used for another hive: %d %q, want 403", code, msg)
	}
	if code, _ := postAs(t, url, readToken, a); code != 403 {
		t.Fatalf("reader posting a heartbeat: %d", code)
	}
	if code, _ := postAs(t, url, "", a); code != 401 {
		t.Fatalf("heartbeat without a token: %d", code)
	}
	if h, _ := q.Registry().Hive("gpu-1"); h.URL != "http://10.0.0.5:7835" || h.Seq != 1 {
		t.Fatalf("the forged heartbeat changed the victim: %+v", h)
	}
	var hs []api.Hive
	if err := (harness.Client{Token: readToken}).Get(url+"/v1/hives", &hs); err != nil || len(hs) != 2 {
		t.Fatalf("reader: %v %v", hs, err)
	}
	for _, h := range hs {
		if h.SessionID != "" {
			t.Fatalf("a reader sees session ids: %+v", h)
		}
	}
	harness.Get(t, url+"/v1/hives", &hs)
	if hs[0].SessionID == "" {
		t.Fatal("the operator does not see session ids")
	}
	var hiveRead []api.Hive
	if err := (harness.Client{Token: hiveAToken}).Get(url+"/v1/hives", &hiveRead); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a hive token reading the registry: %v", err)
	}
	s := harness.Subscribe(t, url+"/v1/heartbeats/stream?access_token="+readToken, harness.SSEOptions{Header: http.Header{"Authorization": nil}})
	s.Close()
	if _, err := queen.New(queen.Config{}); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("a queen without a token: %v", err)
	}
	if _, err := queen.New(queen.Config{Listen: "0.0.0.0:0", Insecure: true}); err != nil {
		t.Fatalf("--insecure-no-auth refused: %v", err)
	}
}

// Impossible numbers never enter the registry: a bad worker entry is
// dropped (and the hive told why), impossible host values are nulled, and
// the rest of the heartbeat is applied.
func TestQueenDropsImpossibleValues(t *testing.T) {
	q, url := newQueen(t, queen.Config{})
	hb := beat(1)
	m := "qwen"
	good := api.Worker{ID: "llm-9301", PID: 42, State: api.StateReady, CPUPct: f(1), GPUUtilPct: f(0), WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "9301", Model: &m}}
	bad := func(id string, mut func(*api.Worker)) api.WorkerReport {
		w := good
		w.ID, w.Instance = "llm-"+id, id
		mut(&w)
		return api.ReportOf(&w, true)
	}
	hb.Workers = append(hb.Workers,
		bad("neg", func(w *api.Worker) { w.CPUPct = f(-1e308) }),
		bad("huge", func(w *api.Worker) { w.CPUPct = f(1e6) }),
		bad("gpu", func(w *api.Worker) { w.GPUUtilPct = f(250) }),
		bad("vram", func(w *api.Worker) { w.VRAMBytes = u(math.MaxUint64) }),
		bad("esc", func(w *api.Worker) { m := "evil\x1b]0;owned\x07"; w.Model = &m }),
		bad("pids", func(w *api.Worker) { w.PIDs = []int{-5} }),
	)
	hb.Node.GPUs = append(hb.Node.GPUs, api.GPU{Index: 1, UUID: "GPU-y", VRAMTotalBytes: u(math.MaxUint64), VRAMUsedBytes: u(0)})
	hb.Node.CPUPct = f(-3)
	b, _ := json.Marshal(hb)
	req, _ := http.NewRequest("POST", url+"/v1/hive-heartbeat", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := harness.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ack api.HeartbeatAck
	json.NewDecoder(resp.Body).Decode(&ack)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(ack.Dropped) != 6 || ack.Clamped != 2 {
		t.Fatalf("%d %+v, want 200 with 6 workers dropped and 2 values clamped", resp.StatusCode, ack)
	}
	for _, d := range ack.Dropped {
		if d.ID == "" || d.Reason == "" {
			t.Fatalf("dropped entry without id or reason: %+v", d)
		}
	}
	h, _ := q.Registry().Hive("gpu-1")
	if len(h.Workers) != 1 || h.Workers[0].ID != "llm-9301" || h.Node.CPUPct != nil || h.Node.GPUs[1].VRAMTotalBytes != nil {
		t.Fatalf("registry holds %+v", h)
	}
	var d api.Decision
	harness.Get(t, url+"/v1/schedule?model=llama&vram_bytes=16Gi", &d)
	if d.GPU == nil || d.GPU.Index != 0 {
		t.Fatalf("a forged GPU won the placement: %+v", d)
	}
	if st := q.Registry().Stats(); st.DroppedWorkers != 6 || st.Clamped != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// The registry is bounded: hives beyond --max-hives, heartbeats beyond a
// hive's rate and stream clients beyond --max-stream-clients are refused
// with a status that says so, and what was there stays.
func TestQueenBounds(t *testing.T) {
	q, url := newQueen(t, queen.Config{MaxHives: 3, Stream: stream.Config{MaxClients: 2}})
	for i := range 5 {
		hb := beat(1)
		hb.HiveID = fmt.Sprintf("junk-%d", i)
		code, msg := postAs(t, url, harness.Token, hb)
		if i < 3 && code != 200 || i >= 3 && (code != 429 || !strings.Contains(msg, "--max-hives")) {
			t.Fatalf("hive %d: %d %q", i, code, msg)
		}
	}
	// A flood from one hive runs out of its burst.
	var limited int
	for seq := uint64(2); seq < 100; seq++ {
		hb := beat(seq)
		hb.HiveID = "junk-0"
		if code, _ := postAs(t, url, harness.Token, hb); code == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("98 heartbeats at once from one hive were all accepted")
	}
	if st := q.Registry().Stats(); st.Hives != 3 || st.TooManyHives != 2 || st.RateLimited != uint64(limited) {
		t.Fatalf("stats %+v (limited %d)", st, limited)
	}
	// Within the body limit, but more pids than a heartbeat may carry.
	bomb := beat(1)
	bomb.HiveID = "junk-1"
	bomb.SessionID = "s2"
	bomb.Workers = nil
	for i := range 5 {
		w := api.ReportOf(&api.Worker{ID: fmt.Sprintf("llm-%d", i), State: api.StateReady, PIDs: make([]int, 16000), WorkerStatic: api.WorkerStatic{Group: "llm", Instance: fmt.Sprint(i)}}, true)
		for j := range w.PIDs {
			w.PIDs[j] = j + 1
		}
		bomb.Workers = append(bomb.Workers, w)
	}
	if code, msg := postAs(t, url, harness.Token, bomb); code != 400 || !strings.Contains(msg, "pids in all") {
		t.Fatalf("pid bomb: %d %q", code, msg)
	}
	s1 := harness.Subscribe(t, url+"/v1/heartbeats/stream", harness.SSEOptions{})
	s2 := harness.Subscribe(t, url+"/v1/heartbeats/stream", harness.SSEOptions{})
	req, _ := http.NewRequest("GET", url+"/v1/heartbeats/stream", nil)
	resp, err := harness.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream client: %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	s1.Close()
	s2.Close()
	var info api.QueenInfo
	harness.Get(t, url+"/v1/info", &info)
	if info.Refused["heartbeat_too_many_hives"] != 2 || info.Refused["stream_clients_over_max"] != 1 {
		t.Fatalf("refusal counters %v", info.Refused)
	}
}

// lockedBuf is a log the daemon writes from many goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// The registry's events reach the stream; a hive going stale and being
// dropped is also a WARN in the queen's log, for journalctl.
func TestQueenStreamsRegistryEvents(t *testing.T) {
	var log lockedBuf
	q, err := queen.New(queen.Config{Listen: "127.0.0.1:0", HiveTTL: 3 * time.Second, SweepEvery: 20 * time.Millisecond,
		Tokens: auth.Tokens{Operator: harness.Token}, Logger: slog.New(slog.NewTextHandler(&log, nil))})
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
	e, i := s.WaitType(5*time.Second, 0, api.EventHiveOnline)
	var on api.HiveOnline
	if err := e.Decode(&on); err != nil || len(on.Hive.Workers) != len(hb.Workers) {
		t.Fatalf("hive_online carries %d workers (%v), want the heartbeat's %d", len(on.Hive.Workers), err, len(hb.Workers))
	}
	_, i = s.WaitType(5*time.Second, i, api.EventHiveTelemetry)
	// Silent for 3 intervals: stale; then removed, workers and all, after
	// the TTL.
	_, i = s.WaitType(5*time.Second, i, api.EventHiveStale)
	e, _ = s.WaitType(5*time.Second, i, api.EventHiveRemoved)
	var gone api.HiveGone
	if err := e.Decode(&gone); err != nil || len(gone.WorkerIDs) != len(hb.Workers) {
		t.Fatalf("hive_removed names %v (%v), want the hive's %d workers", gone.WorkerIDs, err, len(hb.Workers))
	}
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
	for _, want := range []string{`level=WARN msg="hive stale: no heartbeat" hive=` + hb.HiveID, `level=WARN msg="hive removed" hive=` + hb.HiveID} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the queen's log lacks %q:\n%s", want, log.String())
		}
	}
	harness.WaitFor(t, 5*time.Second, func() error {
		if s.Err() == nil {
			return errors.New("the stream is still open after shutdown")
		}
		return nil
	})
}

// A heartbeat naming a worker whose static fields the queen lacks (it
// restarted) is answered need_static, so the hive sends them at once.
func TestAckAsksForMissingStatic(t *testing.T) {
	_, url := newQueen(t, queen.Config{})
	ack := func(hb api.Heartbeat) api.HeartbeatAck {
		var a api.HeartbeatAck
		if code, body := harness.Call(t, "POST", url+"/v1/hive-heartbeat", hb); code != 200 || json.Unmarshal(body, &a) != nil {
			t.Fatalf("heartbeat %d: %d %s", hb.Seq, code, body)
		}
		return a
	}
	hb := beat(1)
	hb.Workers[0].Static = nil
	if !ack(hb).NeedStatic {
		t.Fatal("a worker without static fields the queen lacks: no need_static")
	}
	if ack(beat(2)).NeedStatic {
		t.Fatal("need_static after the static fields came")
	}
}

// The dashboard's page and assets need no token (they hold no data), come
// with a policy that keeps them on their own origin, and /metrics takes
// the read-only token but not a hive's.
func TestQueenServesDashboardAndMetrics(t *testing.T) {
	_, url := newQueen(t, queen.Config{Tokens: auth.Tokens{Operator: harness.Token, Reader: readToken,
		Hives: map[string]string{"gpu-a": hiveAToken}}})
	get := func(path, token string) (int, http.Header, string) { return harness.GetAs(t, url+path, token) }
	code, h, body := get("/", "")
	if code != 200 || !strings.Contains(body, `<script src="static/dash.js"`) || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "connect-src 'self'") || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("GET /: %d %v %.200s", code, h, body)
	}
	for path, ctype := range map[string]string{"/static/dash.js": "text/javascript", "/static/dash.css": "text/css"} {
		if code, h, body := get(path, ""); code != 200 || !strings.HasPrefix(h.Get("Content-Type"), ctype) || len(body) < 1000 {
			t.Fatalf("GET %s: %d %s (%d bytes)", path, code, h.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/static/", "/static/nope.js", "/index.html", "/nope"} {
		if code, _, _ := get(path, ""); code != 404 && code != 401 {
			t.Errorf("GET %s: %d, want 404 or 401", path, code)
		}
	}
	if code, _, _ := get("/metrics", ""); code != 401 {
		t.Fatalf("/metrics without a token: %d", code)
	}
	if code, _, _ := get("/metrics", hiveAToken); code != 403 {
		t.Fatalf("/metrics with a hive's token: %d", code)
	}
	code, h, body = get("/metrics", readToken)
	if code != 200 || !strings.Contains(body, "rbee_queen_hives{state=\"online\"} 0") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics with the read-only token: %d %.300s", code, body)
	}
}

// Heartbeats are decoded into reused memory: what one hive's body says
// must never show in another's record, however they alternate.
func TestHeartbeatsDoNotLeakIntoEachOther(t *testing.T) {
	_, url := newQueen(t, queen.Config{})
	m := "qwen"
	for seq := uint64(1); seq <= 20; seq++ {
		a := beat(seq)
		a.Workers = reports(api.Worker{ID: "llm-9301", PID: 42, State: api.StateReady, CPUPct: f(1), GPUError: "nvml: lost",
			Errors: []string{"io: gone"}, GPUs: []api.WorkerGPU{{Index: 0, UUID: "GPU-x", VRAMBytes: u(1 << 30), SMUtilPct: f(5)}},
			WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "9301", Model: &m}})
		b := beat(seq)
		b.HiveID, b.HiveURL, b.SessionID = "gpu-2", "http://10.0.0.6:7835", "s2"
		b.Workers = reports(api.Worker{ID: "llm-9302", PID: 43, State: api.StateStarting,
			WorkerStatic: api.WorkerStatic{Group: "llm", Instance: "9302", Model: &m}})
		for _, hb := range []api.Heartbeat{a, b} {
			body, _ := json.Marshal(hb)
			if code, msg := post(t, url, gz(body), "gzip"); code != 200 {
				t.Fatalf("heartbeat %s %d: %d %s", hb.HiveID, seq, code, msg)
			}
		}
		var ha, hb api.Hive
		harness.Get(t, url+"/v1/hives/gpu-1", &ha)
		harness.Get(t, url+"/v1/hives/gpu-2", &hb)
		wa, wb := ha.Workers[0], hb.Workers[0]
		if wa.GPUError != "nvml: lost" || len(wa.Errors) != 1 || len(wa.GPUs) != 1 || wa.State != api.StateReady {
			t.Fatalf("round %d: gpu-1's worker %+v", seq, wa)
		}
		if wb.GPUError != "" || len(wb.Errors) != 0 || len(wb.GPUs) != 0 || wb.State != api.StateStarting || wb.CPUPct != nil || wb.PID != 43 {
			t.Fatalf("round %d: gpu-2's worker took gpu-1's values: %+v", seq, wb)
		}
	}
}
