// Package gpufake is a fake nvidia-smi: a scenario (GPUs, processes, and a
// misbehaviour such as a delay, a hang, an error exit or garbage) rendered
// in exactly the formats of the real captures in
// ../shared/fixtures/gpu/h200-driver-580. harness/fakesmi is its binary.
package gpufake

import (
	"encoding/json"
	"fmt"
	"os"
)

// Scenario is what the fake nvidia-smi reports and how it behaves.
type Scenario struct {
	// Time is the table's timestamp (RFC 3339); empty means now.
	Time   string `json:"time,omitempty"`
	Driver string `json:"driver,omitempty"` // default 580.159.04
	CUDA   string `json:"cuda,omitempty"`   // default 13.0
	GPUs   []GPU  `json:"gpus"`
	Procs  []Proc `json:"procs"`

	// Misbehaviour, applied to the invocations named in Only (all when
	// empty): "query-gpu", "query-compute-apps", "pmon", "list", "table".
	Only      []string `json:"only,omitempty"`
	DelayMS   int      `json:"delay_ms,omitempty"`   // sleep before answering
	Hang      bool     `json:"hang,omitempty"`       // never answer; ignore SIGTERM
	HangChild bool     `json:"hang_child,omitempty"` // with Hang: also start a hanging child
	ExitCode  int      `json:"exit_code,omitempty"`  // exit with this code, printing Message
	Message   string   `json:"message,omitempty"`
	Garbage   bool     `json:"garbage,omitempty"`    // print nonsense, exit 0
	NoDevices bool     `json:"no_devices,omitempty"` // "No devices were found", exit 6
}

// GPU is one fake GPU.
type GPU struct {
	Index       int     `json:"index"`
	UUID        string  `json:"uuid"`
	Name        string  `json:"name"`
	BusID       string  `json:"bus_id,omitempty"`
	MemTotalMiB int     `json:"mem_total_mib"`
	MemUsedMiB  int     `json:"mem_used_mib"`
	MemFreeMiB  int     `json:"mem_free_mib,omitempty"` // default total - used
	UtilPct     int     `json:"util_pct"`
	MemUtilPct  int     `json:"mem_util_pct"`
	TempC       int     `json:"temp_c"`
	PowerW      float64 `json:"power_w"`
	PowerCapW   int     `json:"power_cap_w,omitempty"` // default 700
}

// Proc is one process's context on one GPU; a process on two GPUs has two.
type Proc struct {
	PID     int    `json:"pid"`
	GPU     int    `json:"gpu"` // index
	Name    string `json:"name"`
	UsedMiB int    `json:"used_mib"`
	// SMPct and MemPct are nil when pmon prints "-" (no SM use sampled).
	SMPct  *int `json:"sm_pct,omitempty"`
	MemPct *int `json:"mem_pct,omitempty"`
}

// H200Busy is the scenario of the "busy" captures: one H200, two python3
// workers (pid 670 at 99 % SM, pid 671 idle).
func H200Busy() Scenario {
	return Scenario{
		Time: "2026-11-27T10:17:49Z",
		GPUs: []GPU{{Index: 0, UUID: "GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e", Name: "NVIDIA H200", BusID: "00000000:00:06.0",
			MemTotalMiB: 143771, MemUsedMiB: 5377, MemFreeMiB: 137780, UtilPct: 100, MemUtilPct: 16, TempC: 59, PowerW: 691.28}},
		Procs: []Proc{
			{PID: 670, GPU: 0, Name: "python3", UsedMiB: 3786, SMPct: ptr(99), MemPct: ptr(15)},
			{PID: 671, GPU: 0, Name: "python3", UsedMiB: 1576},
		},
	}
}

// H200Idle is the scenario of the "idle" captures.
func H200Idle() Scenario {
	return Scenario{
		Time: "2026-11-27T10:17:33Z",
		GPUs: []GPU{{Index: 0, UUID: "GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e", Name: "NVIDIA H200", BusID: "00000000:00:06.0",
			MemTotalMiB: 143771, MemUsedMiB: 0, MemFreeMiB: 143156, UtilPct: 0, MemUtilPct: 0, TempC: 36, PowerW: 78.43}},
	}
}

func ptr(v int) *int { return &v }

// Load reads a scenario file.
func Load(path string) (Scenario, error) {
	var s Scenario
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read scenario: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse scenario %s: %w", path, err)
	}
	return s, nil
}

// Save writes a scenario file atomically, so a fake running at that moment
// reads the old or the new one, never half of each.
func Save(path string, s Scenario) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
