package registry

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
)

// streamView is what a stream client (the dashboard, an SSE consumer)
// knows of each hive's node, built from events the way dash.js builds
// it: hive_online and the snapshot replace the hive; hive_telemetry
// carries numbers only, by GPU index, and updates the GPUs the client
// knows.
type streamView map[string]*api.Node

func (v streamView) apply(t *testing.T, evs []Event) {
	t.Helper()
	for _, e := range evs {
		switch d := e.Data.(type) {
		case api.HiveOnline:
			n := d.Hive.Node
			n.GPUs = append([]api.GPU(nil), n.GPUs...)
			v[d.HiveID] = &n
		case *api.HiveTelemetry:
			n := v[d.HiveID]
			if n == nil {
				continue
			}
			for _, s := range d.Node.GPUs {
				for i := range n.GPUs {
					if n.GPUs[i].Index == s.Index {
						n.GPUs[i].UtilPct = &s.UtilPct
					}
				}
			}
		}
	}
}

// gpuIDs names a list of GPUs by what a client cannot learn from
// hive_telemetry: index, uuid, name and total memory.
func gpuIDs(gs []api.GPU) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "[%d %s %q %s]", g.Index, g.UUID, g.Name, fmtU64(g.VRAMTotalBytes))
	}
	return b.String()
}

func h200(i int, uuid string) api.GPU {
	return api.GPU{Index: i, UUID: uuid, Name: "NVIDIA H200", VRAMTotalBytes: u(143771 << 20), VRAMUsedBytes: u(5377 << 20), UtilPct: f(100)}
}

// A hive's GPU list must follow its reports, in the registry and in
// what every stream client is told. The registry replaced a hive's node
// on every heartbeat, but the stream carried a GPU's identity (uuid, name,
// total memory) only in hive_online, and hive_telemetry only numbers by
// index: a hive whose first GPU query failed (malformed nvidia-smi output)
// came online with "gpus": [], and once the output was fixed no event
// ever told a client which GPU had appeared, so the dashboard showed none
// for as long as the hive stayed up, while the hive's own /metrics showed
// the GPU. Any change of what only hive_online carries must be announced.
func TestNodeChangesReachStreamClients(t *testing.T) {
	gpuA, gpuB := "GPU-263ebfcc-c477-a4dc-c4c5-bc4f9337309e", "GPU-aaaaaaaa-0000-0000-0000-000000000000"
	tests := []struct {
		name string
		// first makes both heartbeats' node; second changes the second's.
		first, second func(*api.Heartbeat)
		// announce says whether the change needs a hive_online.
		announce bool
	}{
		{"first GPU query failed, then fixed", func(h *api.Heartbeat) {
			h.Node.Errors = []string{"gpu: nvidia-smi --query-gpu: unexpected output: line 1: 9 fields, want 10"}
		}, func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuA)} }, true},
		{"a GPU lost", func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuA), h200(1, gpuB)} },
			func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuA)} }, true},
		{"a GPU replaced at its index", func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuA)} },
			func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuB)} }, true},
		{"a GPU renamed", func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuA)} },
			func(h *api.Heartbeat) { g := h200(0, gpuA); g.Name = "NVIDIA H200 NVL"; h.Node.GPUs = []api.GPU{g} }, true},
		{"total memory known later", func(h *api.Heartbeat) {
			g := h200(0, gpuA)
			g.VRAMTotalBytes, g.VRAMUsedBytes = nil, nil
			h.Node.GPUs = []api.GPU{g}
		},
			func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuA)} }, true},
		{"host memory total changed", func(h *api.Heartbeat) { h.Node.MemTotalBytes, h.Node.MemUsedBytes = u(64<<30), u(1<<30) },
			func(h *api.Heartbeat) { h.Node.MemTotalBytes, h.Node.MemUsedBytes = u(128<<30), u(1<<30) }, true},
		// Numbers travel in hive_telemetry: a change of readings alone is
		// not news, so a busy hive costs each client one small event per
		// heartbeat, not the whole hive.
		{"readings only", func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuA)} },
			func(h *api.Heartbeat) {
				g := h200(0, gpuA)
				g.UtilPct, g.VRAMUsedBytes, g.TempC = f(3), u(1<<30), f(40)
				h.Node.GPUs, h.Node.CPUPct, h.Node.Errors = []api.GPU{g}, f(50), []string{"cpu: something"}
			}, false},
		{"nothing", func(h *api.Heartbeat) { h.Node.GPUs = []api.GPU{h200(0, gpuA)} }, func(*api.Heartbeat) {}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _, rec := newReg()
			view := streamView{}
			w := wk("a", "m", 100, 1, 0)
			h1 := hb("h", "s", 1, w)
			tc.first(&h1)
			mustIngest(t, r, h1)
			view.apply(t, rec.take())

			h2 := hb("h", "s", 2, w)
			tc.first(&h2)
			tc.second(&h2)
			want := gpuIDs(h2.Node.GPUs)
			mustIngest(t, r, h2)
			evs := rec.take()
			view.apply(t, evs)

			got, _ := r.Hive("h")
			if g := gpuIDs(got.Node.GPUs); g != want {
				t.Fatalf("registry view %s, want %s", g, want)
			}
			if g := gpuIDs(view["h"].GPUs); g != want {
				t.Fatalf("a stream client sees GPUs %s after events %s, the registry has %s", g, types(evs), want)
			}
			if n := view["h"]; !eqU64(n.MemTotalBytes, got.Node.MemTotalBytes) {
				t.Fatalf("a stream client sees mem_total %s, the registry has %s", fmtU64(n.MemTotalBytes), fmtU64(got.Node.MemTotalBytes))
			}
			wantTypes := "hive_telemetry"
			if tc.announce {
				wantTypes = "hive_online,hive_telemetry"
			}
			if types(evs) != wantTypes {
				t.Fatalf("events %s, want %s", types(evs), wantTypes)
			}
			if tc.announce {
				on := evs[0].Data.(api.HiveOnline)
				if on.Restarted || on.Returned || len(on.Hive.Workers) != 1 {
					t.Fatalf("hive_online for a changed node: %+v, want the whole hive, neither restarted nor returned", on)
				}
			}
		})
	}
}

func eqU64(a, b *uint64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func fmtU64(p *uint64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}
