//go:build linux

package integration

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cgroups"
)

// The queen dies and comes back empty: every hive and worker is back in
// its registry within 2 heartbeat intervals, with no hive restart.
func TestQueenRestartRecovers(t *testing.T) {
	const interval = 500 * time.Millisecond
	queen := harness.StartQueen(t)
	for i := range 2 {
		h := harness.StartHive(t, harness.HiveOptions{ID: fmt.Sprintf("h%d", i), Queen: queen.URL, Args: []string{"--interval", interval.String()}})
		spawn(t, h, "w", api.SpawnRequest{Args: []string{"--model", "m"}})
	}
	sessions := map[string]string{}
	harness.WaitFor(t, 10*time.Second, func() error {
		var hs []api.Hive
		harness.Get(t, queen.URL+"/v1/hives", &hs)
		if len(hs) != 2 || len(queenWorkers(t, queen, "")) != 2 {
			return fmt.Errorf("%d hives", len(hs))
		}
		for _, h := range hs {
			sessions[h.ID] = h.SessionID
		}
		return nil
	})
	queen.Kill()
	time.Sleep(interval) // the hives see it gone and start retrying
	queen.Restart()
	back := time.Now()
	harness.WaitFor(t, 5*time.Second, func() error {
		var hs []api.Hive
		harness.Get(t, queen.URL+"/v1/hives", &hs)
		if len(hs) != 2 || len(queenWorkers(t, queen, "")) != 2 {
			return fmt.Errorf("%d hives back", len(hs))
		}
		for _, h := range hs {
			if h.SessionID != sessions[h.ID] {
				return fmt.Errorf("hive %s restarted (session %s, was %s)", h.ID, h.SessionID, sessions[h.ID])
			}
		}
		return nil
	})
	took := time.Since(back)
	t.Logf("registry complete %v after the queen came back (interval %v)", took, interval)
	if took > 2*interval {
		t.Fatalf("registry took %v to recover, want within 2 intervals (%v)", took, 2*interval)
	}
}

// A hive restarts while one worker stays alive and one dies: the queen
// sees the new session, the live worker is re-adopted under the same id,
// the dead one is gone, and no cgroup is left.
func TestHiveRestartClearsWorkers(t *testing.T) {
	queen := harness.StartQueen(t)
	parent := harness.CgroupParent(t)
	hive := harness.StartHive(t, harness.HiveOptions{Queen: queen.URL, CgroupParent: parent, Args: []string{"--interval", "300ms"}})
	events := harness.Subscribe(t, queen.URL+"/v1/heartbeats/stream", harness.SSEOptions{})
	keep := spawn(t, hive, "keep", api.SpawnRequest{Args: []string{"--model", "m"}, MemoryLimit: "64Mi"})
	die := spawn(t, hive, "die", api.SpawnRequest{Args: []string{"--model", "m"}})
	_, next := events.WaitFor(5*time.Second, 0, addedOf(die.ID))

	hive.Stop() // SIGTERM: the workers keep running
	if err := syscall.Kill(keep.PID, 0); err != nil {
		t.Fatalf("worker died with the hive: %v", err)
	}
	if err := syscall.Kill(die.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	hive.Restart()
	// The dead worker's removal, then the restarted hive in one event.
	ev, i := events.WaitFor(10*time.Second, next, removedOf(die.ID))
	on, _ := events.WaitFor(10*time.Second, i, isEvent(api.EventHiveOnline, func(d api.HiveOnline) bool { return d.Restarted }))
	if _, ok := on.Worker(keep.ID); !ok {
		t.Fatalf("hive_online after the restart lacks the live worker: %s", on.Data)
	}
	var rm api.WorkerRemoved
	_ = ev.Decode(&rm)
	if rm.Reason != api.ReasonHiveRestarted {
		t.Fatalf("worker_removed %+v, want reason hive_restarted", rm)
	}
	ws := queenWorkers(t, queen, "")
	if len(ws) != 1 || ws[0].ID != keep.ID || ws[0].PID != keep.PID || ws[0].MemLimitBytes == nil || *ws[0].MemLimitBytes != 64<<20 {
		t.Fatalf("workers after the hive restart %+v, want only the live one, same pid and limits", ws)
	}
	for _, e := range events.Events()[next:] {
		if removedOf(keep.ID)(e) {
			t.Fatalf("the live worker was removed: %+v", e)
		}
	}
	cgm, err := cgroups.New(cgroups.Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	rels, err := cgm.List()
	if err != nil || !slices.Equal(rels, []string{"llm/keep"}) {
		t.Fatalf("cgroups after the restart %v (%v), want only llm/keep", rels, err)
	}
}
