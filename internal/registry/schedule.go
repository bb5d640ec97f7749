package registry

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
)

// ErrNoPlacement is returned by Schedule when nothing fits; the message
// says why, naming each candidate passed over.
var ErrNoPlacement = api.Class(api.ErrNotFound, "no placement")

// ErrTooManyReservations: the queen holds MaxReservations open ones.
var ErrTooManyReservations = api.Class(api.ErrTooMany, "too many reservations")

// ErrNoReservation: Release got an id the queen does not hold.
var ErrNoReservation = api.Class(api.ErrNotFound, "no such reservation")

// Request is a scheduling question.
type Request struct {
	Model string
	// VRAMBytes is what a new worker needs in all; 0 means any GPU. A
	// placement of N > 0 bytes is reserved (see Reservation).
	VRAMBytes uint64
	// GPUs is how many GPUs of one hive the model is split over; 0 means 1.
	GPUs int
	// All asks for every eligible worker, ranked, not only the best.
	All bool
	// NoReserve answers a placement without reserving its VRAM (the
	// caller may not hold reservations).
	NoReserve bool
}

// maxPassedOver bounds the candidates a 404 names one by one.
const maxPassedOver = 8

// Schedule answers where a request for q.Model should go: the least
// loaded running worker serving it on an online hive below saturation
// (idle ones first); only when there is none, a placement: the hive and
// GPU(s) with the most free VRAM that fit, counting reservations, which
// the answer then reserves. Else ErrNoPlacement, naming each candidate and
// why it was passed over.
func (r *Registry) Schedule(q Request) (api.Decision, error) {
	if q.GPUs == 0 {
		q.GPUs = 1
	}
	r.mu.RLock()
	ranked, passed := r.rankLocked(q.Model, q.All)
	r.mu.RUnlock()
	if len(ranked) > 0 {
		best := ranked[0]
		d := api.Decision{Kind: "worker", Worker: &best.FleetWorker, ServeAddr: best.ServeAddr, Load: &best.Load, HiveID: best.HiveID, HiveURL: best.HiveURL,
			Reason:     fmt.Sprintf("%s: %s eligible worker serving %s", best.Why, firstOf(best.Load.Idle, "the idle and least loaded", "the least loaded"), q.Model),
			PassedOver: passed}
		if q.All {
			d.Ranked = ranked
		}
		return d, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	r.expireLocked(now)
	d, why, err := r.placeLocked(q, now)
	if err != nil {
		return api.Decision{}, err
	}
	workers := "no worker serves " + q.Model
	if len(passed) > 0 {
		workers = "every worker serving " + q.Model + " was passed over (" + strings.Join(passed, "; ") + ")"
	}
	if d == nil {
		return api.Decision{}, fmt.Errorf("%w: %s, and %s", ErrNoPlacement, workers, why)
	}
	d.Reason = workers + "; " + d.Reason
	d.PassedOver = passed
	return *d, nil
}

func firstOf(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// candidate is a worker serving the model, weighed.
type candidate struct {
	h    *hive
	w    *worker
	load api.WorkerLoad
}

// rankLocked returns the workers serving model that may take a request,
// best first (all of them, or the best only), and why each of the others
// was passed over (the first few, then how many more). Records and
// reasons are built for what is returned only: at fleet size most
// candidates are weighed and dropped. Caller holds mu.
func (r *Registry) rankLocked(model string, all bool) (ranked []api.RankedWorker, passed []string) {
	if model == "" {
		return nil, nil
	}
	var cands []candidate
	nPassed := 0
	for _, id := range r.sortedIDsLocked() {
		h := r.hives[id]
		for i := range h.workers {
			w := &h.workers[i]
			if !w.live() || w.model() != model {
				continue
			}
			load := r.loadOf(h, w)
			var why string
			switch {
			case h.State != api.HiveStateOnline:
				why = "on a stale hive"
			case w.rep.State != api.StateReady:
				why = string(w.rep.State)
				if h := w.rep.Health; h != nil && h.LastError != "" {
					why += fmt.Sprintf(" (health check: %s, %d failed)", h.LastError, h.Failures)
				}
			case load.Saturated:
				why = "saturated (" + whyOf(load) + ")"
			default:
				cands = append(cands, candidate{h, w, load})
				continue
			}
			nPassed++
			if len(passed) < maxPassedOver {
				passed = append(passed, w.rep.ID+"@"+h.ID+" "+why)
			}
		}
	}
	if nPassed > len(passed) {
		passed = append(passed, fmt.Sprintf("and %d more", nPassed-len(passed)))
	}
	better := func(a, b *candidate) int {
		if a.load.Idle != b.load.Idle {
			if a.load.Idle {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(score(a.load), score(b.load)), cmp.Compare(a.h.ID, b.h.ID), cmp.Compare(a.w.rep.ID, b.w.rep.ID))
	}
	if !all && len(cands) > 1 {
		best := 0
		for i := 1; i < len(cands); i++ {
			if better(&cands[i], &cands[best]) < 0 {
				best = i
			}
		}
		cands = cands[best : best+1]
	}
	slices.SortFunc(cands, func(a, b candidate) int { return better(&a, &b) })
	ranked = make([]api.RankedWorker, len(cands))
	for i, c := range cands {
		c.load.Why = whyOf(c.load)
		rec := c.h.record(c.w)
		ranked[i] = api.RankedWorker{FleetWorker: api.FleetWorker{Worker: rec, HiveID: c.h.ID, HiveURL: c.h.URL, Idle: c.load.Idle},
			ServeAddr: api.ServeAddr(c.h.URL, &rec), Load: c.load, Why: c.load.Why}
	}
	return ranked, passed
}

// sortedIDsLocked returns the hive ids in order. Caller holds mu.
func (r *Registry) sortedIDsLocked() []string {
	return slices.Sorted(maps.Keys(r.hives))
}

// score is a worker's load for ranking: the larger of its CPU share of
// its capacity and its busiest GPU's SM share; unknown ranks last.
func score(l api.WorkerLoad) float64 {
	s := -1.0
	if l.CPUFraction != nil {
		s = *l.CPUFraction
	}
	if l.GPUUtilPct != nil {
		s = max(s, *l.GPUUtilPct/100)
	}
	if s < 0 {
		return math.Inf(1)
	}
	return s
}

// whyOf says what a load is made of, briefly.
func whyOf(l api.WorkerLoad) string {
	var why []string
	if l.CPUPct != nil {
		why = append(why, fmt.Sprintf("CPU %.1f%% of %.0f%%", *l.CPUPct, l.CPUCapacityPct))
	} else {
		why = append(why, "CPU not measured yet")
	}
	if l.GPUUtilPct != nil {
		why = append(why, fmt.Sprintf("GPU SM %.1f%%", *l.GPUUtilPct))
	}
	return strings.Join(why, ", ")
}

// loadOf measures how busy a worker is against the saturation limits.
func (r *Registry) loadOf(h *hive, w *worker) api.WorkerLoad {
	s := &w.rep.Stats
	l := api.WorkerLoad{Idle: r.idle(w)}
	capacity := 100 * float64(max(h.Node.CPUCores, 1))
	if w.static.CPULimitPct != nil && *w.static.CPULimitPct > 0 {
		capacity = min(capacity, *w.static.CPULimitPct)
	}
	l.CPUCapacityPct = capacity
	if s.Known(api.StatCPUPct) {
		cpu := math.Round(s[api.StatCPUPct]*10) / 10
		frac := math.Round(cpu/capacity*1000) / 1000
		l.CPUPct, l.CPUFraction = &cpu, &frac
		if frac >= r.cfg.SaturatedCPUFraction {
			l.Saturated = true
		}
	}
	// The busiest of its GPUs: a worker split over two GPUs is saturated
	// when either is.
	for _, g := range w.rep.GPUs {
		if !math.IsNaN(g.SMUtilPct) {
			v := math.Round(g.SMUtilPct*10) / 10
			if l.GPUUtilPct == nil || v > *l.GPUUtilPct {
				l.GPUUtilPct = &v
			}
		}
	}
	if l.GPUUtilPct == nil && s.Known(api.StatGPUUtilPct) {
		v := math.Round(s[api.StatGPUUtilPct]*10) / 10
		l.GPUUtilPct = &v
	}
	if l.GPUUtilPct != nil && *l.GPUUtilPct >= r.cfg.SaturatedGPUPct {
		l.Saturated = true
	}
	return l
}

// reservation is VRAM promised to a placement answer, on some GPUs of a
// hive, until the hive reports a new worker using one of them, it is
// released, or it expires.
type reservation struct {
	api.Reservation
	seq uint64 // order of creation (times may tie)
	// known are the hive's live workers (id to pid) when it was made: a
	// worker not among them is new.
	known map[string]int
}

// placeLocked finds the hive and GPUs with the most free VRAM for q and
// reserves it; nil and why when nothing fits. Caller holds mu.
func (r *Registry) placeLocked(q Request, now time.Time) (*api.Decision, string, error) {
	per := q.VRAMBytes / uint64(q.GPUs)
	if q.VRAMBytes%uint64(q.GPUs) != 0 {
		per++
	}
	best, st := r.bestFitLocked(q.GPUs, per)
	if best == nil {
		return nil, st.why(q, per), nil
	}
	tight := best.free[len(best.free)-1]
	d := &api.Decision{Kind: "gpu", HiveID: best.h.ID, HiveURL: best.h.URL, GPU: &best.gpus[0], GPUs: best.gpus, FreeVRAMBytes: &tight}
	idx := make([]string, len(best.gpus))
	for i, g := range best.gpus {
		idx[i] = fmt.Sprint(g.Index)
	}
	d.Reason = fmt.Sprintf("GPU %s of %s %s the most free VRAM (%s)", strings.Join(idx, ", "), best.h.ID,
		firstOf(len(idx) > 1, "have", "has"), api.FormatBytes(tight))
	switch {
	case q.VRAMBytes > 0 && q.NoReserve:
		d.Reason += "; not reserved: reservations are the operator's"
	case q.VRAMBytes > 0:
		res, err := r.reserveLocked(q, best, per, now)
		if err != nil {
			return nil, "", err
		}
		d.ReservationID, d.ExpiresAt = res.ID, &res.ExpiresAt
		d.Reason += fmt.Sprintf("; %s reserved on each until the hive reports a new worker on it, or %s", api.FormatBytes(per), res.ExpiresAt.Format(time.RFC3339))
	}
	return d, "", nil
}

// gpuPick is a hive's GPUs chosen for a placement, with their free VRAM,
// most free first.
type gpuPick struct {
	h    *hive
	gpus []api.GPU
	free []uint64
}

// fitStats is what a search for a fit saw, to say why nothing fits.
type fitStats struct {
	seen, tooSmall, widest int
	near                   []string // the GPUs passed over, by how little
}

// freeGPU is a GPU with its free VRAM, reservations counted.
type freeGPU struct {
	g    api.GPU
	free uint64
}

// freeGPUsLocked lists h's GPUs of known VRAM, most free first (then by
// index), reservations counted. Caller holds mu.
func (h *hive) freeGPUsLocked(reserved map[gpuKey]uint64) []freeGPU {
	var fgs []freeGPU
	for _, g := range h.Node.GPUs {
		if g.VRAMTotalBytes == nil || g.VRAMUsedBytes == nil {
			continue
		}
		free := *g.VRAMTotalBytes - min(*g.VRAMUsedBytes, *g.VRAMTotalBytes)
		free -= min(free, reserved[gpuKey{h.ID, g.Index}])
		fgs = append(fgs, freeGPU{g, free})
	}
	slices.SortStableFunc(fgs, func(a, b freeGPU) int { return cmp.Or(cmp.Compare(b.free, a.free), cmp.Compare(a.g.Index, b.g.Index)) })
	return fgs
}

// bestFitLocked finds, among online hives, the n GPUs of one hive with
// per bytes free each whose tightest has the most free VRAM; ties go to
// the most in all, then the hive id. Caller holds mu.
func (r *Registry) bestFitLocked(n int, per uint64) (*gpuPick, fitStats) {
	reserved := r.reservedLocked()
	var best *gpuPick
	var st fitStats
	for _, id := range r.sortedIDsLocked() {
		h := r.hives[id]
		if h.State != api.HiveStateOnline {
			continue
		}
		fgs := h.freeGPUsLocked(reserved)
		st.seen += len(fgs)
		st.widest = max(st.widest, len(fgs))
		if len(fgs) < n {
			continue
		}
		chosen := fgs[:n]
		if last := chosen[len(chosen)-1]; last.free < per {
			st.tooSmall++
			if len(st.near) < maxPassedOver {
				st.near = append(st.near, fmt.Sprintf("%s GPU %d has %s free", h.ID, last.g.Index, api.FormatBytes(last.free)))
			}
			continue
		}
		p := &gpuPick{h: h}
		for _, c := range chosen {
			p.gpus, p.free = append(p.gpus, c.g), append(p.free, c.free)
		}
		if best == nil || p.free[len(p.free)-1] > best.free[len(best.free)-1] ||
			p.free[len(p.free)-1] == best.free[len(best.free)-1] && sum(p.free) > sum(best.free) {
			best = p
		}
	}
	return best, st
}

// why says why nothing fits q (per bytes on each of its GPUs).
func (st fitStats) why(q Request, per uint64) string {
	if st.seen == 0 {
		return "no online hive reports a GPU with known VRAM"
	}
	why := fmt.Sprintf("none of %d GPUs on online hives has %s free (reservations counted)", st.seen, api.FormatBytes(q.VRAMBytes))
	switch {
	case q.GPUs > st.widest:
		why = fmt.Sprintf("no online hive has %d GPUs with known VRAM (the most on one is %d)", q.GPUs, st.widest)
	case q.GPUs > 1:
		why = fmt.Sprintf("no online hive has %d GPUs with %s free each (reservations counted)", q.GPUs, api.FormatBytes(per))
	}
	if len(st.near) > 0 {
		why += ": " + strings.Join(st.near, ", ")
	}
	return why
}

// reserveLocked holds per bytes on each GPU of p for q until the hive
// reports a new worker on them or the reservation expires. Caller holds
// mu.
func (r *Registry) reserveLocked(q Request, p *gpuPick, per uint64, now time.Time) (*reservation, error) {
	if len(r.reservations) >= r.cfg.MaxReservations {
		return nil, fmt.Errorf("%w: the queen holds %d open reservations; release one (DELETE /v1/reservations/{id}) or wait %s for them to expire",
			ErrTooManyReservations, len(r.reservations), r.cfg.ReservationTTL)
	}
	res := &reservation{Reservation: api.Reservation{ID: newReservationID(), HiveID: p.h.ID, Model: q.Model, BytesPerGPU: per,
		CreatedAt: now, ExpiresAt: now.Add(r.cfg.ReservationTTL)}, known: map[string]int{}}
	r.resSeq++
	res.seq = r.resSeq
	for _, g := range p.gpus {
		res.GPUs = append(res.GPUs, g.Index)
	}
	for i := range p.h.workers {
		if w := &p.h.workers[i]; w.live() {
			res.known[w.rep.ID] = w.rep.PID
		}
	}
	r.reservations[res.ID] = res
	return res, nil
}

func sum(v []uint64) (s uint64) {
	for _, x := range v {
		s += x
	}
	return s
}

type gpuKey struct {
	hive  string
	index int
}

// reservedLocked sums the open reservations per GPU. Caller holds mu.
func (r *Registry) reservedLocked() map[gpuKey]uint64 {
	out := map[gpuKey]uint64{}
	for _, res := range r.reservations {
		for _, g := range res.GPUs {
			out[gpuKey{res.HiveID, g}] += res.BytesPerGPU
		}
	}
	return out
}

// expireLocked drops reservations past their time. Caller holds mu (write).
func (r *Registry) expireLocked(now time.Time) {
	for id, res := range r.reservations {
		if !now.Before(res.ExpiresAt) {
			delete(r.reservations, id)
		}
	}
}

// claimLocked ends the reservations on h that a new worker now uses: the
// hive's VRAM figures count it from this heartbeat on. A worker claims
// one reservation, the oldest on a GPU it uses. Caller holds mu (write).
func (r *Registry) claimLocked(h *hive) {
	var mine []*reservation
	for _, res := range r.reservations {
		if res.HiveID == h.ID {
			mine = append(mine, res)
		}
	}
	if len(mine) == 0 {
		return
	}
	slices.SortFunc(mine, func(a, b *reservation) int { return cmp.Compare(a.seq, b.seq) })
	for i := range h.workers {
		w := &h.workers[i]
		if !w.live() {
			continue
		}
		for _, res := range mine {
			if _, gone := r.reservations[res.ID]; !gone {
				continue
			}
			if pid, ok := res.known[w.rep.ID]; (ok && pid == w.rep.PID) || !usesAny(w, res.GPUs) {
				continue
			}
			delete(r.reservations, res.ID)
			// It is not new to the others any more.
			for _, o := range mine {
				o.known[w.rep.ID] = w.rep.PID
			}
			break
		}
	}
}

// usesAny reports whether w holds VRAM on any of the GPUs.
func usesAny(w *worker, gpus []int) bool {
	for _, g := range w.rep.GPUs {
		if slices.Contains(gpus, g.Index) && !math.IsNaN(g.VRAMBytes) && g.VRAMBytes > 0 {
			return true
		}
	}
	return false
}

func newReservationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "rsv-" + hex.EncodeToString(b[:])
}

// Release ends a reservation before its time.
func (r *Registry) Release(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.reservations[id]; !ok {
		return fmt.Errorf("%w %q (released, claimed by a new worker, or expired)", ErrNoReservation, id)
	}
	delete(r.reservations, id)
	return nil
}

// Reservations returns the open reservations, oldest first.
func (r *Registry) Reservations() []api.Reservation {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(r.cfg.Now())
	out := make([]api.Reservation, 0, len(r.reservations))
	for _, res := range r.reservations {
		c := res.Reservation
		c.GPUs = slices.Clone(c.GPUs)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b api.Reservation) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}
