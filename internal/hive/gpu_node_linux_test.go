//go:build linux

package hive

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/gpufake"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/monitor"
	"github.com/rbee-dev/rbee/internal/procfs"
	"github.com/rbee-dev/rbee/internal/registry"
)

// gpuHive is a hive over the fake nvidia-smi, without cgroups or workers,
// and an in-process queen registry its heartbeats go to (through JSON, as
// on the wire), recording the events a stream client would get.
type gpuHive struct {
	s      *Server
	url    string
	snd    *sender
	reg    *registry.Registry
	events []registry.Event
}

func newGPUHive(t *testing.T, fake *harness.FakeSMI) *gpuHive {
	t.Helper()
	sampler := gpu.NewSampler(&gpu.SMI{Path: fake.Path}, 2*time.Second)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(Config{HiveID: "h", Workers: monitor.Config{Platform: monitor.Platform{Proc: procfs.Default}}, GPU: sampler,
		Tokens: auth.Tokens{Operator: harness.Token}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		s.Monitor().Close()
		_ = sampler.Close()
	})
	h := &gpuHive{s: s, url: srv.URL}
	h.reg = registry.New(registry.Config{Publish: func(e registry.Event) { h.events = append(h.events, e) }})
	h.snd = newSender(senderConfig{QueenURL: "http://queen.invalid", Interval: time.Second, Log: log, Build: s.heartbeatBase})
	return h
}

// beat samples the GPU, runs a collection pass and delivers its heartbeat to the registry;
// it returns the events that heartbeat made.
func (h *gpuHive) beat(t *testing.T) []registry.Event {
	t.Helper()
	// A tick of the sampler's own clock (Server.Run runs it), then the
	// pass that takes its sample.
	_, _ = h.s.cfg.GPU.Sample(context.Background())
	h.s.pass(context.Background())
	hb, carried := h.snd.heartbeat(false)
	b, err := json.Marshal(hb)
	if err != nil {
		t.Fatalf("encode heartbeat: %v", err)
	}
	var wire api.Heartbeat
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	h.events = nil
	if _, err := h.reg.Ingest(wire); err != nil {
		t.Fatalf("queen refused the heartbeat: %v", err)
	}
	h.snd.took(hb, carried)
	return h.events
}

func (h *gpuHive) metrics(t *testing.T) string {
	t.Helper()
	code, _, body := harness.GetAs(t, h.url+"/metrics", harness.Token)
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	return body
}

// carriesGPU reports whether an event tells a stream client the hive's
// GPU with its identity (hive_telemetry has numbers only, by index).
func carriesGPU(evs []registry.Event, uuid string) bool {
	for _, e := range evs {
		if on, ok := e.Data.(api.HiveOnline); ok {
			for _, g := range on.Hive.Node.GPUs {
				if g.UUID == uuid {
					return true
				}
			}
		}
	}
	return false
}

// Issue 17 (B): the first nvidia-smi output was malformed, then fixed.
// The hive's own /metrics showed the GPU, and the queen's registry had it,
// but the queen's stream never told its clients (the dashboard) which GPU
// had appeared: they kept "gpus": [] from the hive_online of the first
// heartbeat. A hive's GPU list must follow its reports everywhere.
func TestQueenFollowsGPUsAfterMalformedOutput(t *testing.T) {
	sc := gpufake.H200Busy()
	sc.Garbage = true
	fake := harness.FakeNvidiaSMI(t, sc)
	h := newGPUHive(t, fake)
	uuid := gpufake.H200Busy().GPUs[0].UUID

	evs := h.beat(t)
	got, _ := h.reg.Hive("h")
	if len(got.Node.GPUs) != 0 || !strings.Contains(strings.Join(got.Node.Errors, "\n"), "unexpected output") {
		t.Fatalf("malformed output: queen has gpus %+v errors %q", got.Node.GPUs, got.Node.Errors)
	}
	if carriesGPU(evs, uuid) {
		t.Fatal("the first heartbeat cannot carry a GPU nvidia-smi did not report")
	}

	fake.Set(gpufake.H200Busy())
	evs = h.beat(t)
	if m := h.metrics(t); !strings.Contains(m, `rbee_gpu_info{`) || !strings.Contains(m, uuid) {
		t.Fatalf("the hive's /metrics lacks the GPU:\n%s", m)
	}
	got, _ = h.reg.Hive("h")
	if len(got.Node.GPUs) != 1 || got.Node.GPUs[0].UUID != uuid || got.Node.GPUs[0].Name != "NVIDIA H200" {
		t.Fatalf("queen's registry view after the fix: %+v", got.Node.GPUs)
	}
	if !carriesGPU(evs, uuid) {
		t.Fatalf("no event of the heartbeat after the fix tells stream clients of GPU %s (events: %v)", uuid, eventTypes(evs))
	}

	// A later failed query does not make the GPU vanish, nor announce the
	// hive again: the GPU is listed with null readings and the error.
	sc = gpufake.H200Busy()
	sc.Garbage = true
	fake.Set(sc)
	evs = h.beat(t)
	got, _ = h.reg.Hive("h")
	if len(got.Node.GPUs) != 1 || got.Node.GPUs[0].UUID != uuid || got.Node.GPUs[0].VRAMUsedBytes != nil || got.Node.GPUs[0].UtilPct != nil {
		t.Fatalf("while nvidia-smi fails: queen has %+v, want the GPU without readings", got.Node.GPUs)
	}
	if ts := eventTypes(evs); ts != api.EventHiveTelemetry {
		t.Fatalf("events while nvidia-smi fails: %s, want hive_telemetry only", ts)
	}
}

// Issue 17 (A): a GPU name with terminal escapes reaches neither the
// hive's /metrics nor the queen (which used to leave such a GPU out, so
// the queen listed no GPU where the hive's /metrics showed one).
func TestHostileGPUNameNeverReachesMetrics(t *testing.T) {
	sc := gpufake.H200Busy()
	sc.GPUs[0].Name = "\x1b]0;pwned\x07NVIDIA \x1b[2JH200\u009b2J\u202e"
	fake := harness.FakeNvidiaSMI(t, sc)
	h := newGPUHive(t, fake)
	h.beat(t)
	m := h.metrics(t)
	var info string
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "rbee_gpu_info{") {
			info = line
		}
	}
	if info == "" || !strings.Contains(info, "H200") {
		t.Fatalf("no rbee_gpu_info for the GPU:\n%s", m)
	}
	for _, bad := range []string{"\x1b", "\x07", "\u009b", "\u202e"} {
		if strings.Contains(m, bad) {
			t.Fatalf("/metrics holds %q: %q", bad, info)
		}
	}
	got, _ := h.reg.Hive("h")
	if len(got.Node.GPUs) != 1 || strings.ContainsRune(got.Node.GPUs[0].Name, 0x1b) {
		t.Fatalf("queen's view of the GPU: %+v", got.Node.GPUs)
	}
}

func eventTypes(evs []registry.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type)
	}
	return strings.Join(s, ",")
}
