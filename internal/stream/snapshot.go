package stream

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// A thousand dashboards opening at once (a queen restart, a page shared
// on a wall of screens) used to cost a thousand snapshots: 3.7 ms each to
// build and encode for 10 hives × 100 workers, and as many to compress.
// Clients with the same filter that connect within snapshotReuse of each
// other share one instead: each gets its frame, then the events published
// after it from the replay buffer, as a resuming client would. The
// snapshot is built after its place in the stream is fixed, so it already
// holds some of those events, which a client applies again harmlessly
// (each event carries whole records).
const (
	snapshotReuse = time.Second
	// maxSnapshots bounds the filters whose snapshot is held at once.
	maxSnapshots = 64
)

// snapshot is one snapshot event, built on first need.
type snapshot struct {
	seq   uint64 // the newest event when it was taken
	once  sync.Once
	build func() []byte
	w     *wire
}

// frame returns the snapshot's frame, building it (once) if need be; the
// clients that share it wait for the first to build it.
func (s *snapshot) frame() *wire {
	s.once.Do(func() {
		s.w = newWire(s.build())
		s.build = nil
	})
	return s.w
}

// snapshotKey is what a snapshot's content depends on: the hive and model
// filters (not the types), and resync.
func snapshotKey(f Filter, resync bool) string {
	hives := make([]string, 0, len(f.Hives))
	for h := range f.Hives {
		hives = append(hives, h)
	}
	slices.Sort(hives)
	k := strings.Join(hives, ",") + "\x00" + f.Model
	if f.Hives == nil {
		k = "*" + k
	}
	if resync {
		k += "\x00resync"
	}
	return k
}

// snapshotLocked returns the snapshot a client with filter f shares: one
// taken less than snapshotReuse ago whose later events the ring still
// holds, and not so many that they would fill half the client's queue
// (at 1,000 hives a second brings 1,000 telemetry events: a client would
// start with a backlog and be evicted at the next event), else a new one
// as of now. Caller holds mu.
func (b *Broker) snapshotLocked(f Filter, resync bool) *snapshot {
	key := snapshotKey(f, resync)
	if s := b.snaps[key]; s != nil && s.seq >= b.lost && b.seq-s.seq <= uint64(b.cfg.QueueSize/2) {
		b.snapshotsShared.Add(1)
		return s
	}
	seq := b.seq
	at := b.id(seq)
	s := &snapshot{seq: seq, build: func() []byte {
		payload, err := json.Marshal(b.cfg.Snapshot(f, resync))
		if err != nil {
			b.log.Error("snapshot", "err", err)
			payload = []byte(`{"resync":true,"hives":[]}`)
		}
		return frame(at, api.EventSnapshot, payload)
	}}
	b.snapshotsBuilt.Add(1)
	if len(b.snaps) < maxSnapshots {
		b.snaps[key] = s
		// Dropped when it is too old to share: a fleet's snapshot is
		// megabytes, not to be held for nobody.
		time.AfterFunc(snapshotReuse, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.snaps[key] == s {
				delete(b.snaps, key)
			}
		})
	}
	return s
}
