package api

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Hive states in the queen's registry.
const (
	HiveStateOnline = "online"
	HiveStateStale  = "stale"
)

// Hive is a hive's record, as the queen's queries return it.
type Hive struct {
	ID    string `json:"id"`
	URL   string `json:"url"`
	State string `json:"state"`
	// SessionID is shown to operators only: whoever knows it could try
	// to speak for the hive.
	SessionID   string    `json:"session_id,omitempty"`
	Seq         uint64    `json:"seq"`
	Version     string    `json:"version"`
	GPUBackend  string    `json:"gpu_backend"`
	IntervalMS  int64     `json:"interval_ms"`
	LastSeen    time.Time `json:"last_seen"`
	OnlineSince time.Time `json:"online_since"`
	Node        Node      `json:"node"`
	Workers     []Worker  `json:"workers"`
}

// FleetWorker is a worker with its hive, as the queen lists it. Stale is
// true while its hive is stale: it is listed but never scheduled.
type FleetWorker struct {
	Worker
	HiveID  string `json:"hive_id"`
	HiveURL string `json:"hive_url"`
	Stale   bool   `json:"stale"`
	Idle    bool   `json:"idle"`
}

// Decision is a scheduling answer: a running worker that already serves
// the model and can take more, or else a hive and GPU(s) with room to
// start one.
type Decision struct {
	// Kind is "worker" or "gpu" (a placement).
	Kind   string       `json:"kind"`
	Worker *FleetWorker `json:"worker,omitempty"`
	// ServeAddr is where the chosen worker serves requests, when its
	// command line says (see ServeAddr).
	ServeAddr string `json:"serve_addr,omitempty"`
	// Load is how busy the chosen worker is.
	Load   *WorkerLoad `json:"load,omitempty"`
	HiveID string      `json:"hive_id"`
	// HiveURL is where to ask the hive to spawn or route to.
	HiveURL string `json:"hive_url"`
	// GPU is the placement's first GPU, GPUs all of them (several when
	// the model is split over several GPUs of the hive).
	GPU  *GPU  `json:"gpu,omitempty"`
	GPUs []GPU `json:"gpus,omitempty"`
	// FreeVRAMBytes is the free VRAM of the tightest chosen GPU, after
	// the reservations open before this answer.
	FreeVRAMBytes *uint64 `json:"free_vram_bytes,omitempty"`
	// ReservationID names the VRAM this placement holds (vram_bytes > 0)
	// until ExpiresAt, until the hive reports a new worker on those GPUs,
	// or until DELETE /v1/reservations/{id}.
	ReservationID string     `json:"reservation_id,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Reason        string     `json:"reason"`
	// Ranked (all=true) lists every worker that may take the request,
	// best first, for a router to spread requests.
	Ranked []RankedWorker `json:"ranked,omitempty"`
	// PassedOver says briefly which workers serving the model were not
	// eligible, and why.
	PassedOver []string `json:"passed_over,omitempty"`
}

// WorkerLoad is how busy a worker is, as the scheduler weighs it.
type WorkerLoad struct {
	CPUPct *float64 `json:"cpu_pct"`
	// CPUCapacityPct is what the CPU share is taken of: the worker's
	// limit, or all of its hive's cores.
	CPUCapacityPct float64  `json:"cpu_capacity_pct"`
	CPUFraction    *float64 `json:"cpu_fraction"`
	// GPUUtilPct is the SM use of the busiest of its GPUs.
	GPUUtilPct *float64 `json:"gpu_util_pct"`
	Idle       bool     `json:"idle"`
	Saturated  bool     `json:"saturated"`
	Why        string   `json:"why"`
}

// RankedWorker is one worker of an all=true answer.
type RankedWorker struct {
	FleetWorker
	// ServeAddr is where the worker serves requests, when its command
	// line says (see ServeAddr); "" when it does not.
	ServeAddr string     `json:"serve_addr,omitempty"`
	Load      WorkerLoad `json:"load"`
	Why       string     `json:"why"`
}

// ServeAddr is host:port where a worker serves its model, as far as its
// command line says: the port of its --port flag (or, failing that, an
// instance name that is a port number, as "llm-9301" is by convention),
// on its hive's host. "" when neither says a port.
func ServeAddr(hiveURL string, w *Worker) string {
	port := ""
	for i, a := range w.Args {
		if v, ok := strings.CutPrefix(a, "--port="); ok {
			port = v
		} else if a == "--port" && i+1 < len(w.Args) {
			port = w.Args[i+1]
		}
	}
	if port == "" {
		port = w.Instance
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return ""
	}
	u, err := url.Parse(hiveURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// Reservation is VRAM a placement answer holds on GPUs of a hive.
type Reservation struct {
	ID          string    `json:"id"`
	HiveID      string    `json:"hive_id"`
	GPUs        []int     `json:"gpus"`
	BytesPerGPU uint64    `json:"bytes_per_gpu"`
	Model       string    `json:"model"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// FormatBytes writes a byte count in binary units: "512B", "16.0GiB".
func FormatBytes(v uint64) string {
	b := float64(v)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if b < 1024 || u == "TiB" {
			if u == "B" {
				return fmt.Sprintf("%.0f%s", b, u)
			}
			return fmt.Sprintf("%.1f%s", b, u)
		}
		b /= 1024
	}
	return ""
}

// EventQueen is the type of the queen's periodic summary event.
const EventQueen = "queen"

// QueenSummary is the data of the "queen" event and the counters of the
// queen's /v1/info.
type QueenSummary struct {
	Version    string  `json:"version"`
	UptimeS    float64 `json:"uptime_s"`
	Hives      int     `json:"hives"`
	Online     int     `json:"online"`
	Stale      int     `json:"stale"`
	Workers    int     `json:"workers"`
	Heartbeats uint64  `json:"heartbeats"`
	Ignored    uint64  `json:"heartbeats_ignored"`
	Rejected   uint64  `json:"heartbeats_rejected"`
	Clients    int64   `json:"sse_clients"`
	Coalesced  uint64  `json:"sse_coalesced"`
	Evicted    uint64  `json:"sse_evicted"`
}

// QueenInfo is the queen's GET /v1/info.
type QueenInfo struct {
	QueenSummary
	Listen       string  `json:"listen"`
	HiveTTLS     float64 `json:"hive_ttl_s"`
	AuthRequired bool    `json:"auth_required"`
	TLS          bool    `json:"tls"`
	MaxHives     int     `json:"max_hives"`
	// Refused counts refused requests and heartbeats, by reason.
	Refused map[string]uint64 `json:"refused"`
}
