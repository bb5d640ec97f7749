package queen

import (
	"sync"

	"github.com/rbee-dev/rbee/internal/api"
)

// A steady 100-worker heartbeat decoded afresh cost 109 KB of garbage:
// the decoder grows the workers array 10, 20, 40, 80, 160 (310 reports)
// and gives each worker's GPU list room for ten. At 1,000 heartbeats a
// second that garbage was most of what the queen's collector worked on.
// Heartbeats are decoded into pooled values instead, whose workers array
// and GPU lists are reused; the registry copies what it keeps of them.

// maxPooledWorkers bounds the workers array a pooled heartbeat keeps: a
// rare huge hive must not leave its array held for good.
const maxPooledWorkers = 4096

var heartbeats = sync.Pool{New: func() any { return new(api.Heartbeat) }}

// getHeartbeat returns a zero heartbeat, its workers array and their GPU
// lists' memory kept from an earlier decode.
func getHeartbeat() *api.Heartbeat {
	hb := heartbeats.Get().(*api.Heartbeat)
	hb.Reset()
	return hb
}

// putHeartbeat returns hb to the pool once nothing refers to it.
func putHeartbeat(hb *api.Heartbeat) {
	if cap(hb.Workers) <= maxPooledWorkers {
		heartbeats.Put(hb)
	}
}
