package queen

import (
	"testing"

	"github.com/rbee-dev/rbee/internal/api"
)

// A heartbeat from the pool is zero but for its workers array and their
// GPU lists' memory: nothing of the last body's values is left for a
// field the next body leaves out.
func TestPooledHeartbeatIsZero(t *testing.T) {
	reused := false
	for range 20 {
		dirty := getHeartbeat()
		dirty.HiveID, dirty.Seq = "gpu-1", 7
		dirty.Node.GPUs = []api.GPU{{Index: 0}}
		dirty.Workers = append(dirty.Workers, api.WorkerReport{ID: "llm-1", State: api.StateExited, PIDs: api.PIDList{1},
			GPUs: make([]api.GPUStat, 1, 10), GPUError: "x", Errors: []string{"e"}, Exit: &api.WorkerExit{},
			Health: &api.WorkerHealth{}, Static: &api.WorkerStatic{Group: "llm"}})
		putHeartbeat(dirty)
		hb := getHeartbeat()
		if hb.HiveID != "" || hb.Seq != 0 || hb.Node.GPUs != nil || len(hb.Workers) != 0 {
			t.Fatalf("pooled heartbeat not zero: %+v", hb)
		}
		for _, w := range hb.Workers[:cap(hb.Workers)] {
			reused = true
			if w.ID != "" || w.State != "" || w.PIDs != nil || len(w.GPUs) != 0 || w.GPUError != "" || w.Errors != nil ||
				w.Exit != nil || w.Health != nil || w.Static != nil {
				t.Fatalf("pooled worker report not zero: %+v", w)
			}
		}
		putHeartbeat(hb)
	}
	if !reused {
		t.Error("no heartbeat came back from the pool in 20 tries")
	}
}
