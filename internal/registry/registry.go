// Package registry is queen-rbee's registry of hives and their workers:
// heartbeats replace a hive's worker list, hives go stale and are removed
// on the queen's own clock, and every change becomes an Event.
//
// A worker is held as its static fields (shared, replaced only when they
// change) and its latest report (numbers without pointers): the full
// record a query returns is built when asked for, so holding 100,000
// workers costs little and a heartbeat allocates little.
package registry

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/ids"
)

// DefaultHiveTTL is how long a silent hive is kept before it is removed.
const DefaultHiveTTL = 90 * time.Second

// DefaultMaxHives is how many hives a registry holds unless told otherwise.
const DefaultMaxHives = 10000

// StaleAfter is how many missed intervals make a hive stale.
const StaleAfter = 3

// Config configures a Registry. The zero value works: 90 s TTL, real
// clock, events dropped.
type Config struct {
	// HiveTTL is how long a silent hive is kept before it is removed with
	// its workers; 0 means DefaultHiveTTL.
	HiveTTL time.Duration
	// Publish receives every event, in order. It is called outside the
	// registry's lock, so readers are never held up by it.
	Publish func(Event)
	// Telemetry reports whether anyone listens for hive_telemetry; when
	// it says no, the event is not built. nil means always.
	Telemetry func() bool
	// Now is the queen's clock; nil means time.Now.
	Now func() time.Time
	// IdleCPUPct and IdleGPUPct are the thresholds below which a worker
	// counts as idle; 0 means 10.
	IdleCPUPct, IdleGPUPct float64
	// MaxHives bounds the registry; a new hive beyond it is refused with
	// ErrTooManyHives. 0 means DefaultMaxHives.
	MaxHives int
	// SaturatedGPUPct and SaturatedCPUFraction are the loads at which a
	// worker takes no more requests: the SM use of its busiest GPU, and
	// its CPU as a share of its limit (or its hive's cores). 0 means 90
	// and 0.9.
	SaturatedGPUPct, SaturatedCPUFraction float64
	// ReservationTTL is how long a placement's VRAM stays reserved
	// unless a new worker claims it first; 0 means 30 s.
	ReservationTTL time.Duration
	// MaxReservations bounds the open reservations; 0 means 1024.
	MaxReservations int
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
	// ErrHiveIDInUse: another hive, online at another address, has the id.
	ErrHiveIDInUse = api.Class(api.ErrConflict, "hive id in use")
)

// worker is the registry's record of a worker.
type worker struct {
	static *api.WorkerStatic // never nil; replaced, not changed, when it changes
	rep    api.WorkerReport  // the latest report, its Static nil
}

func (w *worker) live() bool { return w.rep.State != api.StateExited }

func (w *worker) model() string {
	if w.static.Model == nil {
		return ""
	}
	return *w.static.Model
}

// hive is the registry's record of a hive: what queries return (its
// Workers left empty), its workers sorted by id, and the heartbeat rate
// limiter (tokens left, as of refilled).
type hive struct {
	api.Hive
	// sentAt is the hive's clock on its latest heartbeat, for events.
	sentAt   time.Time
	workers  []worker
	tokens   float64
	refilled time.Time
}

// gpuUUID names a GPU of the hive by index.
func (h *hive) gpuUUID(i int) string {
	for _, g := range h.Node.GPUs {
		if g.Index == i {
			return g.UUID
		}
	}
	return ""
}

// record is w's record as the queen serves it. Its GPU figures come from
// the sample the hive's last heartbeat names (one for the whole
// heartbeat), so the record says when that sample was taken.
func (h *hive) record(w *worker) api.Worker {
	rec := w.rep.Record(w.static, h.gpuUUID)
	if rec.VRAMBytes != nil || rec.GPUs != nil {
		rec.GPUSampledAt = h.Node.GPUSampledAt
	}
	return rec
}

// Stats counts what the registry has done, for metrics and the summary.
type Stats struct {
	Heartbeats, Ignored, Rejected uint64
	// RateLimited, TooManyHives and IDInUse count refused heartbeats by
	// reason; DroppedWorkers and Clamped what Sanitize removed from
	// accepted ones.
	RateLimited, TooManyHives, IDInUse, DroppedWorkers, Clamped uint64
	Hives, Online, Stale, Workers                               int
}

// Registry is safe for concurrent use; queries take a read lock only.
type Registry struct {
	cfg Config

	mu    sync.RWMutex
	hives map[string]*hive
	stats Stats
	// reservations are the open VRAM reservations of placement answers, by id;
	// resSeq numbers them in order.
	reservations map[string]*reservation
	resSeq       uint64

	pubMu sync.Mutex // keeps events in order while publishing outside mu

	intern *interner // guarded by mu
	// scratch is merge's list under construction, reused (see keep);
	// guarded by mu.
	scratch []worker
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
	if cfg.Telemetry == nil {
		cfg.Telemetry = func() bool { return true }
	}
	if cfg.IdleCPUPct == 0 {
		cfg.IdleCPUPct = 10
	}
	if cfg.IdleGPUPct == 0 {
		cfg.IdleGPUPct = 10
	}
	if cfg.MaxHives == 0 {
		cfg.MaxHives = DefaultMaxHives
	}
	if cfg.HeartbeatRate == 0 {
		cfg.HeartbeatRate = 20
	}
	if cfg.HeartbeatBurst == 0 {
		cfg.HeartbeatBurst = 40
	}
	if cfg.SaturatedGPUPct == 0 {
		cfg.SaturatedGPUPct = 90
	}
	if cfg.SaturatedCPUFraction == 0 {
		cfg.SaturatedCPUFraction = 0.9
	}
	if cfg.ReservationTTL == 0 {
		cfg.ReservationTTL = 30 * time.Second
	}
	if cfg.MaxReservations == 0 {
		cfg.MaxReservations = 1024
	}
	return &Registry{cfg: cfg, hives: map[string]*hive{}, reservations: map[string]*reservation{}, intern: newInterner()}
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
	// NeedStatic is true when a worker came without static fields the
	// registry does not have: it is left out until the hive sends them.
	NeedStatic bool
	// Fixes lists the worker entries dropped and values nulled.
	Fixes Fixes
}

// Ingest applies a heartbeat: the hive's worker list is replaced and the
// differences become events. The queen's clock, not sent_at, marks the
// hive alive. It refuses an invalid heartbeat (ErrInvalid), a new hive
// beyond MaxHives (ErrTooManyHives) and a hive over its heartbeat rate
// (ErrRateLimited), each without changing anything. It keeps nothing of
// hb's memory once it returns but the strings and the node's slices (hb is
// not the caller's to reuse beyond its workers array and their GPU lists).
func (r *Registry) Ingest(hb api.Heartbeat) (Result, error) {
	now := r.cfg.Now()
	fixes, verr := Sanitize(&hb, now)
	r.mu.Lock()
	result, evs, err := r.ingestLocked(&hb, fixes, verr, now)
	r.unlockAndPublish(evs)
	return result, err
}

// ingestLocked is Ingest under mu: what it refuses (verr, Sanitize's
// error, among them) it counts and returns without events.
func (r *Registry) ingestLocked(hb *api.Heartbeat, fixes Fixes, verr error, now time.Time) (Result, []Event, error) {
	if verr != nil {
		r.stats.Rejected++
		return Result{}, nil, verr
	}
	h := r.hives[hb.HiveID]
	if err := r.admitLocked(h, hb, now); err != nil {
		return Result{}, nil, err
	}
	result := Result{Fixes: fixes}
	r.stats.DroppedWorkers += uint64(len(fixes.Dropped))
	r.stats.Clamped += uint64(len(fixes.Clamped))
	if h == nil && lacksStatic(hb.Workers) {
		// A hive the registry does not know (removed after the TTL, or the
		// queen restarted) that speaks on in its session: nothing is taken
		// until it sends every worker's static fields, which it does at
		// once, so its hive_online carries the whole hive.
		result.NeedStatic = true
		return result, nil, nil
	}
	// online says the heartbeat brings the hive (back) online: a new hive,
	// a new session, or a return from stale; or that its host changed
	// (see hostChanged). Its hive_online event then carries the whole
	// hive, so a hive joining costs each client one event, not one per
	// worker.
	var online *api.HiveOnline
	switch {
	case h == nil:
		result.New = true
		h = &hive{Hive: api.Hive{ID: hb.HiveID, OnlineSince: now}, tokens: r.cfg.HeartbeatBurst - 1, refilled: now}
		r.hives[hb.HiveID] = h
		online = &api.HiveOnline{}
	case h.SessionID != hb.SessionID:
		result.Restarted = true
		online = &api.HiveOnline{Restarted: true, Returned: h.State == api.HiveStateStale}
		h.OnlineSince = now
	case hb.Seq <= h.Seq:
		r.stats.Ignored++
		result.Ignored = true
		return result, nil, nil
	case h.State == api.HiveStateStale:
		online = &api.HiveOnline{Returned: true}
		h.OnlineSince = now
	case hostChanged(h, hb):
		// What only hive_online carries changed (a GPU appeared once
		// nvidia-smi answered, one was lost or replaced): clients are told
		// the whole hive again, or they keep the old host for as long as
		// the hive stays up.
		online = &api.HiveOnline{}
	}
	h.URL, h.SessionID, h.Seq = hb.HiveURL, hb.SessionID, hb.Seq
	h.Version, h.GPUBackend, h.IntervalMS = hb.Version, hb.GPUBackend, hb.IntervalMS
	h.Node = hb.Node
	h.LastSeen, h.State, h.sentAt = now, api.HiveStateOnline, hb.SentAt
	cur, need := r.merge(h, hb.Workers, result.Restarted)
	result.NeedStatic = need
	evs := r.diff(h, h.workers, cur, result.Restarted, online != nil)
	h.workers = r.keep(h.workers, cur)
	if len(r.reservations) > 0 {
		r.claimLocked(h)
	}
	if online != nil {
		evs = append(evs, hiveOnline(h, *online))
	}
	r.stats.Heartbeats++
	if r.cfg.Telemetry() {
		evs = append(evs, telemetry(h, now))
	}
	return result, evs, nil
}

// admitLocked refuses, and counts, a heartbeat of a new hive beyond
// MaxHives, of a hive over its heartbeat rate, or of a second hive with
// the id of one online elsewhere; h is the hive the registry has under
// that id (nil: none). Caller holds mu.
func (r *Registry) admitLocked(h *hive, hb *api.Heartbeat, now time.Time) error {
	switch {
	case h == nil && len(r.hives) >= r.cfg.MaxHives:
		r.stats.TooManyHives++
		return fmt.Errorf("%w: the queen holds %d hives, its --max-hives", ErrTooManyHives, len(r.hives))
	case h == nil:
		return nil
	case !r.allowLocked(h, now):
		r.stats.RateLimited++
		return fmt.Errorf("%w: hive %s sends more than %g heartbeats a second", ErrRateLimited, hb.HiveID, r.cfg.HeartbeatRate)
	case h.SessionID != hb.SessionID && h.URL != hb.HiveURL && h.State == api.HiveStateOnline:
		// Two hives with one id (a second hive on a host, both named
		// after it) would take the id from each other every second. A
		// hive that restarted at another address is taken once the old
		// one's heartbeats have stopped long enough to make it stale.
		r.stats.IDInUse++
		return fmt.Errorf("%w: hive %s is online at %s; a second hive with this --hive-id (at %s) is refused until that one is stale (%d missed intervals)",
			ErrHiveIDInUse, hb.HiveID, h.URL, ids.Quote(hb.HiveURL), StaleAfter)
	}
	return nil
}

// hostChanged reports whether hb changes any of a hive's fields that
// stream clients learn only from hive_online (and the snapshot): its URL,
// version, GPU backend and interval, and its node's static side, which
// is the cores, the memory total, the limits, and each GPU's index, uuid,
// name and total memory. hive_telemetry carries the node's readings only,
// GPU by index, so a client could not learn of such a change from it: the
// hive's view must be sent whole again, as worker_changed does for a
// worker's static fields. Readings and errors are not compared: they
// change with every heartbeat and travel in hive_telemetry.
func hostChanged(h *hive, hb *api.Heartbeat) bool {
	a, b := &h.Node, &hb.Node
	if h.URL != hb.HiveURL || h.Version != hb.Version || h.GPUBackend != hb.GPUBackend || h.IntervalMS != hb.IntervalMS ||
		a.CPUCores != b.CPUCores || !samePtr(a.MemTotalBytes, b.MemTotalBytes) ||
		a.LimitsEnforced != b.LimitsEnforced || a.LimitsReason != b.LimitsReason || len(a.GPUs) != len(b.GPUs) {
		return true
	}
	for i := range a.GPUs {
		ga, gb := &a.GPUs[i], &b.GPUs[i]
		if ga.Index != gb.Index || ga.UUID != gb.UUID || ga.Name != gb.Name || !samePtr(ga.VRAMTotalBytes, gb.VRAMTotalBytes) {
			return true
		}
	}
	return false
}

// samePtr reports whether two optional values are both null or equal.
func samePtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// lacksStatic reports whether a report comes without its static fields.
func lacksStatic(reps []api.WorkerReport) bool {
	for i := range reps {
		if reps[i].Static == nil {
			return true
		}
	}
	return false
}

// merge builds a hive's new worker list from a heartbeat's reports (sorted
// by id, as Sanitize leaves them), taking each worker's static fields from
// the report or, when it has none, from what the registry had. A worker
// with neither is left out, and need says so. After a restart nothing the
// registry had counts.
func (r *Registry) merge(h *hive, reps []api.WorkerReport, restarted bool) (cur []worker, need bool) {
	cur = r.scratch[:0]
	defer func() { r.scratch = cur[:0] }() // keeps what append grew
	old := h.workers
	if restarted {
		old = nil
	}
	j := 0
	for i := range reps {
		rep := reps[i]
		for j < len(old) && old[j].rep.ID < rep.ID {
			j++
		}
		var prev *worker
		if j < len(old) && old[j].rep.ID == rep.ID {
			prev = &old[j]
		}
		st := rep.Static
		switch {
		case st == nil && prev != nil:
			st = prev.static
		case st != nil && prev != nil && prev.static.Equal(st):
			st = prev.static // unchanged: keep sharing the one already held
		}
		if st == nil {
			need = true
			continue
		}
		if st == rep.Static {
			st = r.intern.static(st) // new or changed
		}
		rep.Static = nil
		rep.State = state(rep.State)
		// A copy of its own, sized to fit: the caller may reuse the
		// report's (the queen decodes into the same memory again), and
		// the decoder gives a one-GPU worker room for ten (240 bytes a
		// worker, a fifth of the registry at 100,000 workers).
		if len(rep.GPUs) == 0 {
			rep.GPUs = nil
		} else {
			rep.GPUs = slices.Clone(rep.GPUs)
		}
		cur = append(cur, worker{static: st, rep: rep})
	}
	return cur, need
}

// keep returns the hive's new worker list, cur (merge's, in the
// registry's scratch), in old's memory when it fits: a steady heartbeat
// then allocates no list, where a new one each time was a fifth of the
// queen's garbage at 100,000 workers. Nothing outside mu holds on to a
// hive's list (events and queries copy what they take), so it is
// overwritten in place. The scratch is cleared, to hold nothing alive.
func (r *Registry) keep(old, cur []worker) []worker {
	var out []worker
	if cap(old) >= len(cur) && cap(old) <= 2*len(cur)+16 {
		out = old[:len(cur)]
		copy(out, cur)
		if len(old) > len(cur) {
			clear(old[len(cur):])
		}
	} else {
		out = slices.Clone(cur)
	}
	clear(cur)
	return out
}

// allow takes one token from h's bucket, refilled at HeartbeatRate up to
// HeartbeatBurst. Caller holds mu.
func (r *Registry) allowLocked(h *hive, now time.Time) bool {
	h.tokens = min(r.cfg.HeartbeatBurst, h.tokens+now.Sub(h.refilled).Seconds()*r.cfg.HeartbeatRate)
	h.refilled = now
	if h.tokens < 1 {
		return false
	}
	h.tokens--
	return true
}

// unlockAndPublish releases mu, which the caller holds, and publishes evs
// in the order their changes were made: pubMu is taken before mu is
// released, so a later change cannot publish first.
func (r *Registry) unlockAndPublish(evs []Event) {
	r.pubMu.Lock()
	r.mu.Unlock()
	defer r.pubMu.Unlock()
	for _, e := range evs {
		r.cfg.Publish(e)
	}
}

// diff turns the change from old to cur (both sorted by id) into worker
// events. With whole set (the hive_online that follows carries every
// worker), it reports removals only.
func (r *Registry) diff(h *hive, old, cur []worker, restarted, whole bool) []Event {
	var evs []Event
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || i < len(old) && old[i].rep.ID < cur[j].rep.ID:
			// Gone from the hive's list.
			if p := &old[i]; p.live() {
				reason := api.ReasonGone
				if restarted {
					reason = api.ReasonHiveRestarted
				}
				evs = append(evs, removed(h, p, reason))
			}
			i++
		case i == len(old) || cur[j].rep.ID < old[i].rep.ID:
			switch w := &cur[j]; {
			case whole:
			case w.live():
				evs = append(evs, added(h, w))
			default:
				// Spawned and gone between two heartbeats: its exit is
				// news all the same (a worker OOM-killed at start).
				evs = append(evs, removed(h, w, exitReason(w)))
			}
			j++
		default:
			p, w := &old[i], &cur[j]
			switch {
			case p.live() && p.rep.PID != w.rep.PID:
				// The same id now names another process: the old one is
				// gone. A new one that has exited already is what the id
				// ends with.
				switch {
				case !w.live():
					evs = append(evs, removed(h, w, exitReason(w)))
				case whole:
					evs = append(evs, removed(h, p, api.ReasonReplaced))
				default:
					evs = append(evs, removed(h, p, api.ReasonReplaced), added(h, w))
				}
			case p.live() && !w.live():
				evs = append(evs, removed(h, w, exitReason(w)))
			case whole:
			case !p.live() && !w.live() && p.rep.PID != w.rep.PID:
				// Restarted and exited again between two heartbeats.
				evs = append(evs, removed(h, w, exitReason(w)))
			case !p.live() && w.live():
				evs = append(evs, added(h, w))
			case w.live() && (p.rep.State != w.rep.State || p.static != w.static && !p.static.Equal(w.static)):
				// Its static fields, or its state (starting, ready,
				// unhealthy: what routing goes by), changed.
				evs = append(evs, Event{Type: api.EventWorkerChanged, Hive: h.ID, Models: []string{w.model()},
					Data: api.WorkerChanged{HiveID: h.ID, At: h.LastSeen, SentAt: h.sentAt, Worker: h.record(w)}})
			}
			i++
			j++
		}
	}
	return evs
}

// exitReason is why an exited worker leaves: it was stopped, or exited.
func exitReason(w *worker) string {
	if w.rep.Exit != nil && w.rep.Exit.Stopped {
		return api.ReasonStopped
	}
	return api.ReasonExited
}

func added(h *hive, w *worker) Event {
	return Event{Type: api.EventWorkerAdded, Hive: h.ID, Models: []string{w.model()}, Data: api.WorkerAdded{HiveID: h.ID, At: h.LastSeen, SentAt: h.sentAt, Worker: h.record(w)}}
}

func removed(h *hive, w *worker, reason string) Event {
	rec := h.record(w)
	return Event{Type: api.EventWorkerRemoved, Hive: h.ID, Models: []string{w.model()}, Data: api.WorkerRemoved{
		HiveID: h.ID, At: h.LastSeen, WorkerID: rec.ID, Reason: reason, ExitCode: rec.ExitCode, Signal: rec.Signal, OOMKilled: rec.OOMKilled, LogTail: rec.LogTail, Worker: rec,
	}}
}

// hiveOnline is the event of a hive coming (back) online: the whole hive,
// which replaces what a client had of it. Every client gets it (a model
// filter sees the hive with only that model's workers).
func hiveOnline(h *hive, o api.HiveOnline) Event {
	o.HiveID, o.HiveURL = h.ID, h.URL
	o.Hive = h.viewLocked()
	o.Hive.SessionID = ""
	return Event{Type: api.EventHiveOnline, Hive: h.ID, Data: o, View: func(model string) any {
		v := o
		v.Hive.Workers = api.WorkersOfModel(o.Hive.Workers, model)
		return v
	}}
}

// telemetry is a hive's hive_telemetry event: its numbers only.
func telemetry(h *hive, now time.Time) Event {
	t := api.HiveTelemetry{HiveID: h.ID, At: now, SentAt: h.sentAt, Node: api.NodeStatsOf(&h.Node),
		WorkerFields: api.TelemetryWorkerFields, StatFields: api.TelemetryStats,
		Workers: make([]api.WorkerTelemetry, len(h.workers))}
	models := map[string]bool{}
	of := make([]string, len(h.workers)) // each worker's model, for View
	for i := range h.workers {
		w := &h.workers[i]
		t.Workers[i] = api.WorkerTelemetry{ID: w.rep.ID, State: w.rep.State, Stats: w.rep.Stats, GPUs: w.rep.GPUs}
		if m := w.model(); m != "" {
			models[m] = true
			of[i] = m
		}
	}
	// Never nil: a hive serving no model is not one a model filter wants.
	return Event{Type: api.EventHiveTelemetry, Hive: h.ID, Models: append([]string{}, slices.Sorted(maps.Keys(models))...), Data: &t,
		View: func(model string) any {
			v := t
			v.Workers = []api.WorkerTelemetry{}
			for i := range t.Workers {
				if of[i] == model {
					v.Workers = append(v.Workers, t.Workers[i])
				}
			}
			return &v
		}}
}

// Sweep marks hives stale after StaleAfter missed intervals and removes
// them, with their workers, after the TTL, and returns the events it
// published (for the daemon's log). Call it a few times a second.
func (r *Registry) Sweep() []Event {
	now := r.cfg.Now()
	r.mu.Lock()
	r.expireLocked(now)
	var evs []Event
	for _, id := range slices.Sorted(maps.Keys(r.hives)) {
		h := r.hives[id]
		silent := now.Sub(h.LastSeen)
		if silent > r.cfg.HiveTTL {
			// One event for the hive and its workers, as hive_online.
			gone := api.HiveGone{HiveID: id, LastSeen: h.LastSeen, Reason: "silent for more than the hive TTL " + r.cfg.HiveTTL.String(),
				WorkerIDs: make([]string, 0, len(h.workers))}
			for i := range h.workers {
				if w := &h.workers[i]; w.live() {
					gone.WorkerIDs = append(gone.WorkerIDs, w.rep.ID)
				}
			}
			evs = append(evs, Event{Type: api.EventHiveRemoved, Hive: id, Data: gone})
			delete(r.hives, id)
			for rid, res := range r.reservations {
				if res.HiveID == id {
					delete(r.reservations, rid)
				}
			}
			continue
		}
		if h.State == api.HiveStateOnline && silent > StaleAfter*time.Duration(h.IntervalMS)*time.Millisecond {
			h.State = api.HiveStateStale
			evs = append(evs, Event{Type: api.EventHiveStale, Hive: id, Data: api.HiveGone{HiveID: id, LastSeen: h.LastSeen, Reason: "missed 3 heartbeat intervals"}})
		}
	}
	r.unlockAndPublish(evs)
	return evs
}

// view returns what queries return for a hive: its record with the full
// records of its workers. Caller holds mu (read).
func (h *hive) viewLocked() api.Hive {
	c := h.Hive
	c.Workers = make([]api.Worker, len(h.workers))
	for i := range h.workers {
		c.Workers[i] = h.record(&h.workers[i])
	}
	return c
}

// HiveFilter selects hives; nil matches every hive.
type HiveFilter func(id string) bool

// Hives returns every hive f keeps, sorted by id.
func (r *Registry) Hives(f HiveFilter) []api.Hive {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]api.Hive, 0, len(r.hives))
	for id, h := range r.hives {
		if f == nil || f(id) {
			out = append(out, h.viewLocked())
		}
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
	return h.viewLocked(), true
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
		for i := range h.workers {
			w := &h.workers[i]
			// A stale hive's readings are old: its workers are not idle
			// for anyone to route to.
			idle := r.idle(w) && h.State != api.HiveStateStale
			if f.Model != "" && w.model() != f.Model || f.State != "" && w.rep.State != f.State || f.Idle != nil && idle != *f.Idle {
				continue
			}
			out = append(out, api.FleetWorker{Worker: h.record(w), HiveID: h.ID, HiveURL: h.URL, Stale: h.State == api.HiveStateStale, Idle: idle})
		}
	}
	slices.SortFunc(out, func(a, b api.FleetWorker) int {
		return cmp.Or(strings.Compare(a.HiveID, b.HiveID), strings.Compare(a.ID, b.ID))
	})
	return out
}

// idle reports whether a running worker's CPU and GPU use are below the
// thresholds. An unknown CPU reading is not idle; an unknown GPU reading
// is idle only when the hive reports no GPU error (it has no GPU backend).
func (r *Registry) idle(w *worker) bool {
	s := &w.rep.Stats
	if w.rep.State != api.StateReady || !s.Known(api.StatCPUPct) || s[api.StatCPUPct] >= r.cfg.IdleCPUPct {
		return false
	}
	if s.Known(api.StatGPUUtilPct) {
		return s[api.StatGPUUtilPct] < r.cfg.IdleGPUPct
	}
	return w.rep.GPUError == ""
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
		s.Workers += len(h.workers)
	}
	return s
}
