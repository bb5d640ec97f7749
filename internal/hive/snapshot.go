package hive

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// snapshot is one collection pass's view of the hive: the host and every
// worker, sorted by id. It is immutable once published; the heartbeat
// sender, the API and the metrics all read the latest one, so a pass is
// taken, copied and sorted once, however many read it.
type snapshot struct {
	at      time.Time
	node    api.Node
	workers []api.Worker
}

// latest returns the newest snapshot (an empty one before the first pass).
func (s *Server) latest() *snapshot {
	if p := s.snap.Load(); p != nil {
		return p
	}
	return &snapshot{}
}

// pass runs one collection pass over the host and every worker, forgets
// workers that exited longer than the retention ago, and publishes the
// result. Host and worker rates cover the same window: the time since the
// previous pass.
func (s *Server) pass(ctx context.Context) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	start := time.Now()
	recs := s.mon.Collect(ctx)
	node := s.node.read()
	info := s.mon.Info()
	node.LimitsEnforced, node.LimitsReason = info.LimitsEnforced, info.LimitsReason
	now := time.Now()
	kept := s.retain(recs, now)
	s.snap.Store(&snapshot{at: now, node: node, workers: kept})
	s.metrics.pass.Observe(time.Since(start).Seconds())
}

// retain forgets the exited workers past their retention, and the oldest
// exits beyond MaxExitedKept, and returns the records left.
func (s *Server) retain(recs []api.Worker, now time.Time) []api.Worker {
	var exits []time.Time
	for _, r := range recs {
		if r.State == api.StateExited && r.ExitedAt != nil {
			exits = append(exits, *r.ExitedAt)
		}
	}
	cutoff := now.Add(-s.cfg.ExitedRetention)
	if n := len(exits); n > MaxExitedKept {
		slices.SortFunc(exits, func(a, b time.Time) int { return b.Compare(a) }) // newest first
		cutoff = later(cutoff, exits[MaxExitedKept-1])
	}
	kept := recs[:0]
	for _, r := range recs {
		if r.State == api.StateExited && r.ExitedAt != nil && r.ExitedAt.Before(cutoff) && s.mon.Forget(r.ID) {
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// drop publishes a copy of the latest snapshot without the workers ids,
// removed at the user's asking.
func (s *Server) drop(ids ...string) {
	if len(ids) == 0 {
		return
	}
	s.passMu.Lock()
	defer s.passMu.Unlock()
	old := s.latest()
	ws := slices.DeleteFunc(slices.Clone(old.workers), func(w api.Worker) bool { return slices.Contains(ids, w.ID) })
	s.snap.Store(&snapshot{at: old.at, node: old.node, workers: ws})
}

// upsert publishes a copy of the latest snapshot with rec in it, so a
// worker just spawned or stopped shows in the API at once, before the
// pass its change triggered has run.
func (s *Server) upsert(rec api.Worker) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	old := s.latest()
	ws := slices.Clone(old.workers)
	i, found := slices.BinarySearchFunc(ws, rec.ID, func(w api.Worker, id string) int { return strings.Compare(w.ID, id) })
	if found {
		ws[i] = rec
	} else {
		ws = slices.Insert(ws, i, rec)
	}
	s.snap.Store(&snapshot{at: old.at, node: old.node, workers: ws})
}

// changed is the monitor's OnChange (a spawn, an exit, a stop): it asks
// for a pass at once, which then sends a heartbeat at once.
func (s *Server) changed() {
	select {
	case s.passNow <- struct{}{}:
	default:
	}
}

// collect runs a pass every interval, and at once after a change; a pass
// after a change is followed by a heartbeat.
func (s *Server) collect(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.pass(ctx)
		case <-s.passNow:
			s.pass(ctx)
			for _, snd := range s.sends {
				snd.Poke()
			}
		}
	}
}

// heartbeatBase builds a heartbeat's header and node from the latest
// snapshot, and returns its workers; the sender makes their entries
// (sender.heartbeat).
func (s *Server) heartbeatBase() (api.Heartbeat, []api.Worker) {
	snap := s.latest()
	backend := "none"
	if s.cfg.GPU != nil {
		backend = s.cfg.GPU.Backend()
	}
	ws := clipPIDs(snap.workers)
	if ws == nil {
		ws = []api.Worker{}
	}
	node := snap.node
	if node.GPUs == nil {
		node.GPUs = []api.GPU{}
	}
	if node.Errors == nil {
		node.Errors = []string{}
	}
	return api.Heartbeat{
		HiveID: s.cfg.HiveID, HiveURL: s.url, SentAt: time.Now().UTC(),
		IntervalMS: s.cfg.Interval.Milliseconds(), Version: s.cfg.Version, GPUBackend: backend,
		Node: node,
	}, ws
}
