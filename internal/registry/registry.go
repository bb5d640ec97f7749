// Package registry is queen-rbee's registry of hives and their workers:
// heartbeats replace a hive's worker list, hives go stale and are removed
// on the queen's own clock, and every change becomes an Event.
package registry

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// DefaultHiveTTL is how long a silent hive is kept before it is removed.
const DefaultHiveTTL = 90 * time.Second

// StaleAfter is how many missed intervals make a hive stale.
const StaleAfter = 3

// Config configures a Registry. The zero value works: 90 s TTL, real
// clock, events dropped.
type Config struct {
	// HiveTTL is how long a silent hive is kept before it is removed with
	// its workers; 0 means 90 s.
	HiveTTL time.Duration
	// Publish receives every event, in order. It is called outside the
	// registry's lock, so readers are never held up by it.
	Publish func(Event)
	// Now is the queen's clock; nil means time.Now.
	Now func() time.Time
	// IdleCPUPct and IdleGPUPct are the thresholds below which a worker
	// counts as idle; 0 means 10.
	IdleCPUPct, IdleGPUPct float64
	// MaxHives bounds the registry; a new hive beyond it is refused with
	// ErrTooManyHives. 0 means 10,000.
	MaxHives int
	// HeartbeatRate and HeartbeatBurst bound each hive's heartbeats (a
	// token bucket): a hive sends one per interval and one per change, so
	// more is a bug or an attack. 0 means 20 per second, bursts of 40.
	HeartbeatRate, HeartbeatBurst float64
}

// Errors Ingest returns besides ErrInvalid.
var (
	// ErrTooManyHives: the registry holds MaxHives hives already.
	ErrTooManyHives = api.Class(api.ErrTooMany, "too many hives")
	// ErrRateLimited: the hive sends heartbeats faster than allowed.
	ErrRateLimited = api.Class(api.ErrTooMany, "heartbeats too frequent")
)

// hive is the registry's record of a hive: what queries return, and the
// heartbeat rate limiter (tokens left, as of refilled).
type hive struct {
	api.Hive
	tokens   float64
	refilled time.Time
}

// Stats counts what the registry has done, for metrics and the summary.
type Stats struct {
	Heartbeats, Ignored, Rejected uint64
	// RateLimited and TooManyHives count refused heartbeats by reason;
	// DroppedWorkers and Clamped what Validate removed from accepted ones.
	RateLimited, TooManyHives, DroppedWorkers, Clamped uint64
	Hives, Online, Stale, Workers                      int
}

// Registry is safe for concurrent use; queries take a read lock only.
type Registry struct {
	cfg Config

	mu    sync.RWMutex
	hives map[string]*hive
	stats Stats

	pubMu sync.Mutex // keeps events in order while publishing outside mu
}

// New returns an empty registry.
func New(cfg Config) *Registry {
	if cfg.HiveTTL == 0 {
		cfg.HiveTTL = DefaultHiveTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Publish == nil {
		cfg.Publish = func(Event) {}
	}
	if cfg.IdleCPUPct == 0 {
		cfg.IdleCPUPct = 10
	}
	if cfg.IdleGPUPct == 0 {
		cfg.IdleGPUPct = 10
	}
	if cfg.MaxHives == 0 {
		cfg.MaxHives = 10000
	}
	if cfg.HeartbeatRate == 0 {
		cfg.HeartbeatRate = 20
	}
	if cfg.HeartbeatBurst == 0 {
		cfg.HeartbeatBurst = 40
	}
	return &Registry{cfg: cfg, hives: map[string]*hive{}}
}

// HiveTTL is how long a silent hive is kept.
func (r *Registry) HiveTTL() time.Duration { return r.cfg.HiveTTL }

// Result says what Ingest did with a heartbeat.
type Result struct {
	// Ignored is true for a heartbeat older than the last applied one of
	// the same session.
	Ignored   bool
	Restarted bool
	New       bool
	// Report lists the worker entries dropped and values nulled.
	Report Report
}

// Ingest applies a heartbeat: the hive's worker list is replaced and the
// differences become events. The queen's clock, not sent_at, marks the
// hive alive. It refuses an invalid heartbeat (ErrInvalid), a new hive
// beyond MaxHives (ErrTooManyHives) and a hive over its heartbeat rate
// (ErrRateLimited), each without changing anything.
func (r *Registry) Ingest(hb api.Heartbeat) (Result, error) {
	now := r.cfg.Now()
	rep, err := Validate(&hb, now)
	if err != nil {
		r.mu.Lock()
		r.stats.Rejected++
		r.mu.Unlock()
		return Result{}, err
	}
	r.mu.Lock()
	h := r.hives[hb.HiveID]
	if h == nil && len(r.hives) >= r.cfg.MaxHives {
		r.stats.TooManyHives++
		r.mu.Unlock()
		return Result{}, fmt.Errorf("%w: the queen holds %d hives, its --max-hives", ErrTooManyHives, len(r.hives))
	}
	if h != nil && !r.allow(h, now) {
		r.stats.RateLimited++
		r.mu.Unlock()
		return Result{}, fmt.Errorf("%w: hive %s sends more than %g heartbeats a second", ErrRateLimited, hb.HiveID, r.cfg.HeartbeatRate)
	}
	res := Result{Report: rep}
	r.stats.DroppedWorkers += uint64(len(rep.Dropped))
	r.stats.Clamped += uint64(len(rep.Clamped))
	var evs []Event
	switch {
	case h == nil:
		res.New = true
		h = &hive{Hive: api.Hive{ID: hb.HiveID, OnlineSince: now}, tokens: r.cfg.HeartbeatBurst - 1, refilled: now}
		r.hives[hb.HiveID] = h
		evs = append(evs, Event{Type: api.EventHiveOnline, Hive: h.ID, Data: api.HiveOnline{HiveID: h.ID, HiveURL: hb.HiveURL}})
	case h.SessionID != hb.SessionID:
		res.Restarted = true
		evs = append(evs, Event{Type: api.EventHiveOnline, Hive: h.ID, Data: api.HiveOnline{HiveID: h.ID, HiveURL: hb.HiveURL, Restarted: true, Returned: h.State == api.HiveStateStale}})
		h.OnlineSince = now
	case hb.Seq <= h.Seq:
		r.stats.Ignored++
		r.mu.Unlock()
		res.Ignored = true
		return res, nil
	case h.State == api.HiveStateStale:
		evs = append(evs, Event{Type: api.EventHiveOnline, Hive: h.ID, Data: api.HiveOnline{HiveID: h.ID, HiveURL: hb.HiveURL, Returned: true}})
		h.OnlineSince = now
	}
	evs = append(evs, diffWorkers(h.ID, h.Workers, hb.Workers, res.Restarted)...)

	h.URL, h.SessionID, h.Seq = hb.HiveURL, hb.SessionID, hb.Seq
	h.Version, h.GPUBackend, h.IntervalMS = hb.Version, hb.GPUBackend, hb.IntervalMS
	h.Node, h.Workers = hb.Node, hb.Workers
	h.LastSeen, h.State = now, api.HiveStateOnline
	r.stats.Heartbeats++
	evs = append(evs, Event{Type: api.EventHiveTelemetry, Hive: h.ID, Data: copyHive(h)})
	r.publish(evs)
	return res, nil
}

// allow takes one token from h's bucket, refilled at HeartbeatRate up to
// HeartbeatBurst. Caller holds mu.
func (r *Registry) allow(h *hive, now time.Time) bool {
	h.tokens = min(r.cfg.HeartbeatBurst, h.tokens+now.Sub(h.refilled).Seconds()*r.cfg.HeartbeatRate)
	h.refilled = now
	if h.tokens < 1 {
		return false
	}
	h.tokens--
	return true
}

// publish releases mu and publishes evs in order. Caller holds mu.
func (r *Registry) publish(evs []Event) {
	r.pubMu.Lock()
	r.mu.Unlock()
	defer r.pubMu.Unlock()
	for _, e := range evs {
		r.cfg.Publish(e)
	}
}

// diffWorkers turns the change from old to cur into worker events.
func diffWorkers(hive string, old, cur []api.Worker, restarted bool) []Event {
	var evs []Event
	prev := make(map[string]*api.Worker, len(old))
	for i := range old {
		prev[old[i].ID] = &old[i]
	}
	seen := make(map[string]bool, len(cur))
	for i := range cur {
		w := &cur[i]
		seen[w.ID] = true
		p := prev[w.ID]
		live := w.State != api.StateExited
		switch {
		case p == nil:
			if live {
				evs = append(evs, added(hive, *w))
			}
		case p.State != api.StateExited && p.PID != w.PID:
			// The same id now names another process: the old one is gone.
			evs = append(evs, removed(hive, *p, api.ReasonReplaced))
			if live {
				evs = append(evs, added(hive, *w))
			}
		case p.State != api.StateExited && !live:
			evs = append(evs, removed(hive, *w, api.ReasonExited))
		case p.State == api.StateExited && live:
			evs = append(evs, added(hive, *w))
		}
	}
	for i := range old {
		if p := &old[i]; !seen[p.ID] && p.State != api.StateExited {
			reason := api.ReasonGone
			if restarted {
				reason = api.ReasonHiveRestarted
			}
			evs = append(evs, removed(hive, *p, reason))
		}
	}
	return evs
}

func added(hive string, w api.Worker) Event {
	return Event{Type: api.EventWorkerAdded, Hive: hive, Data: api.WorkerAdded{HiveID: hive, Worker: w}}
}

func removed(hive string, w api.Worker, reason string) Event {
	return Event{Type: api.EventWorkerRemoved, Hive: hive, Data: api.WorkerRemoved{
		HiveID: hive, WorkerID: w.ID, Reason: reason, ExitCode: w.ExitCode, Signal: w.Signal, OOMKilled: w.OOMKilled, Worker: w,
	}}
}

// Sweep marks hives stale after StaleAfter missed intervals and removes
// them, with their workers, after the TTL. Call it a few times a second.
func (r *Registry) Sweep() {
	now := r.cfg.Now()
	r.mu.Lock()
	var evs []Event
	for _, id := range slices.Sorted(maps.Keys(r.hives)) {
		h := r.hives[id]
		silent := now.Sub(h.LastSeen)
		if silent > r.cfg.HiveTTL {
			for _, w := range h.Workers {
				if w.State != api.StateExited {
					evs = append(evs, removed(id, w, api.ReasonHiveRemoved))
				}
			}
			evs = append(evs, Event{Type: api.EventHiveRemoved, Hive: id, Data: api.HiveGone{HiveID: id, LastSeen: h.LastSeen, Reason: "silent for more than the hive TTL " + r.cfg.HiveTTL.String()}})
			delete(r.hives, id)
			continue
		}
		if h.State == api.HiveStateOnline && silent > StaleAfter*time.Duration(h.IntervalMS)*time.Millisecond {
			h.State = api.HiveStateStale
			evs = append(evs, Event{Type: api.EventHiveStale, Hive: id, Data: api.HiveGone{HiveID: id, LastSeen: h.LastSeen, Reason: "missed 3 heartbeat intervals"}})
		}
	}
	r.publish(evs)
}

func copyHive(h *hive) api.Hive {
	c := h.Hive
	c.Workers = slices.Clone(h.Workers)
	return c
}

// Hives returns every hive, sorted by id.
func (r *Registry) Hives() []api.Hive {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]api.Hive, 0, len(r.hives))
	for _, h := range r.hives {
		out = append(out, copyHive(h))
	}
	slices.SortFunc(out, func(a, b api.Hive) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Hive returns one hive.
func (r *Registry) Hive(id string) (api.Hive, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.hives[id]
	if !ok {
		return api.Hive{}, false
	}
	return copyHive(h), true
}

// Filter selects workers; zero fields match everything.
type Filter struct {
	Model string
	Hive  string
	State api.State
	// Idle, when set, keeps only idle (true) or only busy (false) workers.
	Idle *bool
}

// Workers returns the workers matching f, sorted by hive and id.
func (r *Registry) Workers(f Filter) []api.FleetWorker {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []api.FleetWorker
	for _, h := range r.hives {
		if f.Hive != "" && h.ID != f.Hive {
			continue
		}
		for _, w := range h.Workers {
			v := api.FleetWorker{Worker: w, HiveID: h.ID, HiveURL: h.URL, Stale: h.State == api.HiveStateStale, Idle: r.idle(w)}
			if f.Model != "" && (w.Model == nil || *w.Model != f.Model) ||
				f.State != "" && w.State != f.State ||
				f.Idle != nil && v.Idle != *f.Idle {
				continue
			}
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b api.FleetWorker) int {
		return cmp.Or(cmp.Compare(a.HiveID, b.HiveID), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// idle reports whether a running worker's CPU and GPU use are below the
// thresholds. An unknown CPU reading is not idle; an unknown GPU reading
// is idle only when the hive reports no GPU error (it has no GPU backend).
func (r *Registry) idle(w api.Worker) bool {
	if w.State != api.StateRunning || w.CPUPct == nil || *w.CPUPct >= r.cfg.IdleCPUPct {
		return false
	}
	if w.GPUUtilPct != nil {
		return *w.GPUUtilPct < r.cfg.IdleGPUPct
	}
	return w.GPUError == ""
}

// Stats returns the counters and current sizes.
func (r *Registry) Stats() Stats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.stats
	s.Hives = len(r.hives)
	for _, h := range r.hives {
		if h.State == api.HiveStateOnline {
			s.Online++
		} else {
			s.Stale++
		}
		s.Workers += len(h.Workers)
	}
	return s
}
