package stream_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/stream"
)

// Clients that connect together share one snapshot; one that comes after
// an event takes the shared snapshot and that event after it, so its view
// is as whole as if the snapshot had been made for it; a snapshot a
// second old is not shared, and filters that see different fleets do not
// share one.
func TestSnapshotShared(t *testing.T) {
	var built atomic.Int64
	hives := snapshotOf("h1", "h2")
	b, url := newBroker(t, stream.Config{Snapshot: func(f stream.Filter, resync bool) any {
		built.Add(1)
		return hives(f, resync)
	}})
	var cs []*harness.SSEClient
	for range 20 {
		cs = append(cs, harness.Subscribe(t, url, harness.SSEOptions{}))
	}
	waitClients(t, b, 20)
	if err := b.Publish(stream.Event{Type: "worker_added", Key: "h1", Data: payload{N: 1}}); err != nil {
		t.Fatal(err)
	}
	late := harness.Subscribe(t, url, harness.SSEOptions{})
	for i, c := range append(cs, late) {
		c.WaitType(5*time.Second, 0, "worker_added")
		evs := c.Events()
		if len(evs) != 2 || evs[0].Type != "snapshot" || seqOf(t, b, evs[0].ID) != 0 || seqOf(t, b, evs[1].ID) != 1 {
			t.Fatalf("client %d: %+v; want the snapshot (as of event 0) and event 1", i, evs)
		}
	}
	if n := built.Load(); n != 1 {
		t.Errorf("%d snapshots built for 21 clients within a second, want 1", n)
	}
	if s := b.Stats(); s.SnapshotsBuilt != 1 || s.SnapshotsShared < 20 {
		t.Errorf("stats %+v", s)
	}
	// Another filter, another snapshot: it sees one hive.
	one := harness.Subscribe(t, url+"?hive=h2", harness.SSEOptions{})
	e, _ := one.WaitType(5*time.Second, 0, "snapshot")
	var sn snap
	if err := e.Decode(&sn); err != nil || len(sn.Hives) != 1 || sn.Hives[0] != "h2" {
		t.Fatalf("filtered snapshot %s (%v)", e.Data, err)
	}
	// A second on, the first is no longer shared.
	harness.WaitFor(t, 5*time.Second, func() error {
		c := harness.Subscribe(t, url, harness.SSEOptions{})
		defer c.Close()
		e, _ := c.WaitType(5*time.Second, 0, "snapshot")
		if seqOf(t, b, e.ID) != 1 {
			return fmt.Errorf("snapshot id %s: still the shared one", e.ID)
		}
		return nil
	})
	if n := built.Load(); n != 3 {
		t.Errorf("%d snapshots built, want 3", n)
	}
}

// A snapshot is not shared with a client that would then have more
// events to catch up on than half its queue holds: it gets its own.
func TestSnapshotNotSharedPastHalfTheQueue(t *testing.T) {
	var built atomic.Int64
	b, url := newBroker(t, stream.Config{QueueSize: 8, Snapshot: func(f stream.Filter, resync bool) any {
		built.Add(1)
		return snap{}
	}})
	first := harness.Subscribe(t, url, harness.SSEOptions{})
	first.WaitType(5*time.Second, 0, "snapshot")
	for i := range 5 {
		if err := b.Publish(stream.Event{Type: "worker_added", Key: "h1", Data: payload{N: i}}); err != nil {
			t.Fatal(err)
		}
	}
	late := harness.Subscribe(t, url, harness.SSEOptions{})
	e, _ := late.WaitType(5*time.Second, 0, "snapshot")
	if seqOf(t, b, e.ID) != 5 || built.Load() != 2 {
		t.Fatalf("late client's snapshot %s, %d built; want its own, as of event 5", e.ID, built.Load())
	}
	if s := b.Stats(); s.Evicted != 0 {
		t.Fatalf("stats %+v", s)
	}
}
