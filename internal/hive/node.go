package hive

import (
	"runtime"
	"sync"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/counter"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/procfs"
)

// nodeReader measures the host: CPU % as a delta of /proc/stat between
// reads, memory from /proc/meminfo, GPUs from the sampler's last query.
type nodeReader struct {
	proc    *procfs.FS // nil off Linux
	sampler *gpu.Sampler

	mu   sync.Mutex
	prev procfs.CPUTimes
	ok   bool
}

func (n *nodeReader) read() api.Node {
	node := api.Node{CPUCores: runtime.NumCPU(), Errors: []string{}}
	if n.proc != nil {
		if ct, err := n.proc.CPUTimes(); err == nil {
			n.mu.Lock()
			// Percent of the whole host, as top's summary shows it.
			if pct, ok := counter.Share(n.prev.Busy, ct.Busy, n.prev.Total, ct.Total); n.ok && ok {
				node.CPUPct = &pct
			}
			n.prev, n.ok = ct, true
			n.mu.Unlock()
		} else {
			node.Errors = append(node.Errors, "cpu: "+err.Error())
		}
		if mi, err := n.proc.Meminfo(); err == nil {
			used := mi.Total - min(mi.Available, mi.Total)
			node.MemTotalBytes, node.MemUsedBytes = &mi.Total, &used
		} else {
			node.Errors = append(node.Errors, "memory: "+err.Error())
		}
	}
	if n.sampler != nil {
		snap, at, err := n.sampler.Last()
		node.GPUs = snap.Devices
		if !at.IsZero() && err == nil {
			node.GPUSampledAt = &at
		}
		if err != nil {
			node.Errors = append(node.Errors, "gpu: "+err.Error())
		}
	}
	if node.GPUs == nil {
		node.GPUs = []api.GPU{}
	}
	return node
}
