package registry

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/rbee-dev/rbee/internal/api"
)

// ErrNoPlacement is returned by Schedule when nothing fits; the message
// says why.
var ErrNoPlacement = api.Class(api.ErrNotFound, "no placement")

// Schedule picks where a request for model should go: the least loaded
// idle worker serving it on an online hive, else the online hive's GPU with
// the most free VRAM that fits vramBytes.
func (r *Registry) Schedule(model string, vramBytes uint64) (api.Decision, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var candidates []api.FleetWorker
	var busy, stale int
	for _, h := range r.hives {
		for i := range h.workers {
			w := &h.workers[i]
			if model == "" || w.model() != model || w.rep.State != api.StateRunning {
				continue
			}
			switch {
			case h.State == api.HiveStateStale:
				stale++
			case !r.idle(w):
				busy++
			default:
				candidates = append(candidates, api.FleetWorker{Worker: h.record(w), HiveID: h.ID, HiveURL: h.URL, Idle: true})
			}
		}
	}
	if len(candidates) > 0 {
		slices.SortFunc(candidates, func(a, b api.FleetWorker) int {
			return cmp.Or(cmp.Compare(load(a.GPUUtilPct), load(b.GPUUtilPct)), cmp.Compare(load(a.CPUPct), load(b.CPUPct)),
				cmp.Compare(a.HiveID, b.HiveID), cmp.Compare(a.ID, b.ID))
		})
		w := candidates[0]
		return api.Decision{Kind: "worker", Worker: &w, HiveID: w.HiveID, HiveURL: w.HiveURL,
			Reason: fmt.Sprintf("least loaded of %d idle workers serving %s", len(candidates), model)}, nil
	}

	var best *api.Decision
	var gpus int
	var bestFree uint64
	for _, h := range r.hives {
		if h.State != api.HiveStateOnline {
			continue
		}
		for i := range h.Node.GPUs {
			g := h.Node.GPUs[i]
			if g.VRAMTotalBytes == nil || g.VRAMUsedBytes == nil {
				continue
			}
			gpus++
			free := *g.VRAMTotalBytes - min(*g.VRAMUsedBytes, *g.VRAMTotalBytes)
			if free < vramBytes {
				continue
			}
			if best == nil || free > bestFree || free == bestFree && h.ID < best.HiveID {
				bestFree = free
				f := free
				best = &api.Decision{Kind: "gpu", HiveID: h.ID, HiveURL: h.URL, GPU: &g, FreeVRAMBytes: &f}
			}
		}
	}
	if best != nil {
		best.Reason = fmt.Sprintf("no idle worker serves %q; GPU %d of %s has the most free VRAM (%d bytes)", model, best.GPU.Index, best.HiveID, bestFree)
		return *best, nil
	}
	why := fmt.Sprintf("no idle worker serves %q (%d busy, %d on stale hives)", model, busy, stale)
	if gpus == 0 {
		return api.Decision{}, fmt.Errorf("%w: %s, and no online hive reports a GPU with known VRAM", ErrNoPlacement, why)
	}
	return api.Decision{}, fmt.Errorf("%w: %s, and none of %d GPUs on online hives has %d bytes of VRAM free", ErrNoPlacement, why, gpus, vramBytes)
}

func load(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}
