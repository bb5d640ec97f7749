// Package loadgen makes a fleet's worth of heartbeats for load tests and
// benchmarks: N hives of M workers each, with realistic records (command
// lines, limits, GPUs, numbers that move), sent the way a hive sends them
// (the static fields on a session's first heartbeat, then only numbers).
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
)

// Hive is one simulated hive.
type Hive struct {
	ID      string
	session string
	seq     uint64
	workers []api.Worker
	gpus    []api.GPU
	rng     *rand.Rand
	full    bool // the next heartbeat carries the static fields
}

// NewHive returns a hive with workers workers, gpus GPUs (0: none).
func NewHive(id string, workers, gpus int) *Hive {
	h := &Hive{ID: id, session: fmt.Sprintf("%s-%d", id, time.Now().UnixNano()), rng: rand.New(rand.NewPCG(uint64(len(id)), uint64(workers))), full: true}
	start := time.Now().Add(-time.Hour).UTC()
	models := []string{"qwen2.5-0.5b", "meta-llama/Llama-3.1-8B-Instruct", "mistral-7b-instruct", "bge-small-en"}
	for g := range gpus {
		h.gpus = append(h.gpus, api.GPU{Index: g, UUID: fmt.Sprintf("GPU-%08x-c477-a4dc-c4c5-bc4f9337309e", g), Name: "NVIDIA H200",
			VRAMTotalBytes: api.Ptr(uint64(150754820096)), VRAMUsedBytes: api.Ptr(uint64(20 << 30)), UtilPct: api.Ptr(50.0),
			TempC: api.Ptr(45.0), PowerW: api.Ptr(300.0)})
	}
	for i := range workers {
		m := models[i%len(models)]
		inst := fmt.Sprint(9300 + i)
		lim := int64(16 << 30)
		w := api.Worker{
			ID:    "llm-" + inst,
			PID:   10000 + i,
			PIDs:  []int{10000 + i, 20000 + i},
			State: api.StateReady,
			WorkerStatic: api.WorkerStatic{Group: "llm", Instance: inst,
				Binary: "/opt/llm/bin/vllm-worker", Args: []string{"--model", m, "--port", inst, "--max-model-len", "8192"}, Model: &m,
				Cgroup: "/system.slice/rbee-hive.service/rbee.slice/llm/" + inst, LimitsEnforced: true,
				StartedAt: &start, CPULimitPct: api.Ptr(400.0), MemLimitBytes: &lim, PidsLimit: api.Ptr(int64(4096))},
		}
		if gpus > 0 {
			w.GPUs = []api.WorkerGPU{{Index: i % gpus, UUID: h.gpus[i%gpus].UUID}}
		}
		h.workers = append(h.workers, w)
	}
	h.tick()
	return h
}

// tick moves every number a little, as a pass would.
func (h *Hive) tick() {
	for i := range h.workers {
		w := &h.workers[i]
		w.CPUPct = api.Ptr(20 + h.rng.Float64()*60)
		w.MemBytes = api.Ptr(uint64(2<<30 + h.rng.IntN(1<<30)))
		w.MemRSSBytes = api.Ptr(*w.MemBytes - 100<<20)
		w.MemWorkingSetBytes = api.Ptr(*w.MemBytes - 50<<20)
		w.IOReadBps, w.IOWriteBps = api.Ptr(float64(h.rng.IntN(1<<20))), api.Ptr(float64(h.rng.IntN(4<<20)))
		w.UptimeS = api.Ptr(time.Since(*w.StartedAt).Seconds())
		// Counters grow by a second's worth of the rates.
		w.CPUSeconds = api.Ptr(deref(w.CPUSeconds) + *w.CPUPct/100)
		w.IOReadBytes = api.Ptr(uint64(deref(w.IOReadBytes) + uint64(*w.IOReadBps)))
		w.IOWriteBytes = api.Ptr(uint64(deref(w.IOWriteBytes) + uint64(*w.IOWriteBps)))
		for g := range w.GPUs {
			w.GPUs[g].VRAMBytes = api.Ptr(uint64(8<<30 + h.rng.IntN(1<<30)))
			w.GPUs[g].SMUtilPct = api.Ptr(h.rng.Float64() * 100)
		}
		if len(w.GPUs) > 0 {
			w.VRAMBytes, w.GPUUtilPct = w.GPUs[0].VRAMBytes, w.GPUs[0].SMUtilPct
		}
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// Next returns the hive's next heartbeat: numbers moved, the static fields
// when the session is new (or Resend asked for them).
func (h *Hive) Next() api.Heartbeat {
	h.tick()
	h.seq++
	hb := api.Heartbeat{HiveID: h.ID, HiveURL: "http://" + h.ID + ":7835", SessionID: h.session, Seq: h.seq,
		SentAt: time.Now().UTC(), IntervalMS: 1000, Version: "loadgen", GPUBackend: "nvml",
		Node: api.Node{CPUCores: 64, CPUPct: api.Ptr(h.rng.Float64() * 100), MemTotalBytes: api.Ptr(uint64(1 << 40)),
			MemUsedBytes: api.Ptr(uint64(300 << 30)), GPUs: h.gpus, LimitsEnforced: true, Errors: []string{}},
		Workers: make([]api.WorkerReport, len(h.workers))}
	for i := range h.workers {
		hb.Workers[i] = api.ReportOf(&h.workers[i], h.full)
	}
	h.full = false
	return hb
}

// Resend makes the next heartbeat carry every static field.
func (h *Hive) Resend() { h.full = true }

// Encode returns hb as the hive posts it: JSON, gzipped (apiclient.Gzip, as
// the hive) above 1 KiB.
func Encode(hb api.Heartbeat) (body []byte, gzipped bool, err error) {
	b, err := json.Marshal(hb)
	if err != nil || len(b) <= 1024 {
		return b, false, err
	}
	z, err := apiclient.Gzip(b)
	return z, err == nil, err
}

// Post sends hb to a queen at base with token, and returns its answer.
func Post(ctx context.Context, c *http.Client, base, token string, hb api.Heartbeat) (api.HeartbeatAck, error) {
	body, gz, err := Encode(hb)
	if err != nil {
		return api.HeartbeatAck{}, err
	}
	return PostBody(ctx, c, base, token, body, gz)
}

// PostBody sends an encoded heartbeat (see Encode), for load that must
// not spend the sender's CPU on encoding.
func PostBody(ctx context.Context, c *http.Client, base, token string, body []byte, gzipped bool) (api.HeartbeatAck, error) {
	var ack api.HeartbeatAck
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/hive-heartbeat", bytes.NewReader(body))
	if err != nil {
		return ack, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		return ack, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return ack, fmt.Errorf("%s: %s", resp.Status, b)
	}
	return ack, json.Unmarshal(b, &ack)
}

// Body is one encoded heartbeat.
type Body struct {
	Data    []byte
	Gzipped bool
}

// Fleet returns n hives of workers workers with gpus GPUs each, named
// <prefix>-0000 on.
func Fleet(prefix string, n, workers, gpus int) []*Hive {
	hs := make([]*Hive, n)
	for i := range hs {
		hs[i] = NewHive(fmt.Sprintf("%s-%04d", prefix, i), workers, gpus)
	}
	return hs
}

// Rounds encodes rounds heartbeats of every hive, round by round (hive
// order within each): the first round of a new session carries the
// static fields.
func Rounds(hs []*Hive, rounds int) ([][]Body, error) {
	out := make([][]Body, rounds)
	for r := range out {
		out[r] = make([]Body, len(hs))
		for i, h := range hs {
			b, gz, err := Encode(h.Next())
			if err != nil {
				return nil, err
			}
			out[r][i] = Body{b, gz}
		}
	}
	return out, nil
}
