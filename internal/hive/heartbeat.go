package hive

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/ids"
)

// pokeGap is the least time between two poked heartbeats (after a spawn,
// an exit) to one queen: 16 a second at most. With the interval's own
// (one a second by default) that stays under the queen's default limit
// of 20 a second per hive (registry.Config.HeartbeatRate), and a churn
// with --interval below a quarter second draws on its burst of 40.
const pokeGap = 62 * time.Millisecond

// gzipAbove is the body size from which heartbeats are compressed.
const gzipAbove = 1024

// sender posts heartbeats to the queen on its own goroutine, so a slow
// collection pass (a GPU query near its deadline) never delays one: it
// sends the latest state every interval and at once when poked.
type sender struct {
	base     string // the queen's URL, as configured
	url      string // the queen's heartbeat endpoint
	token    string
	interval time.Duration
	build    func() (api.Heartbeat, []api.Worker)
	log      *slog.Logger
	client   *http.Client

	// sent holds, per worker, the static fields this queen has got: a
	// heartbeat carries a worker's static fields only when they differ.
	// Only the sender's goroutine uses it (send and final run there, or
	// after it ended).
	sent map[string]api.WorkerStatic

	poke chan struct{}

	mu        sync.Mutex
	session   string // new at start, and whenever the queen ignores us
	seq       uint64
	failures  int
	failedAt  time.Time
	lastLog   time.Time
	delivered time.Time
	dropLog   map[string]time.Time // worker id -> when its refusal was logged
	// sentN and failedN count heartbeats delivered and failed, for
	// /metrics.
	sentN, failedN uint64
	lastErr        string // of the failing streak, "" once delivered
}

// senderConfig configures a sender.
type senderConfig struct {
	QueenURL string
	Token    string
	Interval time.Duration
	// TLS is the client's TLS configuration (a private CA); nil means the
	// system's roots.
	TLS *tls.Config
	Log *slog.Logger
	// Build returns the heartbeat's header and node, and the workers to
	// report; the sender fills in the session, the sequence number and
	// the workers' entries.
	Build func() (api.Heartbeat, []api.Worker)
}

func newSender(c senderConfig) *sender {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = c.TLS
	return &sender{
		base: c.QueenURL, url: strings.TrimRight(c.QueenURL, "/") + "/v1/hive-heartbeat", token: c.Token, interval: c.Interval,
		build: c.Build, log: c.Log, poke: make(chan struct{}, 1), session: newSession(),
		client:  &http.Client{Timeout: max(c.Interval, 2*time.Second), Transport: tr},
		dropLog: map[string]time.Time{}, sent: map[string]api.WorkerStatic{},
	}
}

// heartbeat builds the next heartbeat: each worker's static fields are in
// it when the queen has not got them yet (all of them, with all). It
// returns the statics it carries, to remember once the queen took them.
func (s *sender) heartbeat(all bool) (api.Heartbeat, map[string]api.WorkerStatic) {
	hb, ws := s.build()
	hb.SessionID, hb.Seq = s.next()
	hb.Workers = make([]api.WorkerReport, len(ws))
	carried := map[string]api.WorkerStatic{}
	for i := range ws {
		st := ws[i].WorkerStatic
		prev, ok := s.sent[ws[i].ID]
		with := all || !ok || !prev.Equal(&st)
		hb.Workers[i] = api.ReportOf(&ws[i], with)
		if with {
			carried[ws[i].ID] = st
		}
	}
	return hb, carried
}

// took records what a heartbeat the queen took carried: with all, the
// queen now has exactly the workers it listed.
func (s *sender) took(hb api.Heartbeat, carried map[string]api.WorkerStatic) {
	if len(carried) == len(hb.Workers) {
		clear(s.sent)
	} else {
		live := make(map[string]bool, len(hb.Workers))
		for _, w := range hb.Workers {
			live[w.ID] = true
		}
		for id := range s.sent {
			if !live[id] {
				delete(s.sent, id)
			}
		}
	}
	maps.Copy(s.sent, carried)
}

// newSession returns a random session id.
func newSession() string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// next returns the session and sequence number of the next heartbeat.
func (s *sender) next() (string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if s.seq == 1 {
		// A new session: the queen treats it as a restart and forgets
		// what it had, so every static field goes again.
		clear(s.sent)
	}
	return s.session, s.seq
}

// Poke asks for a heartbeat now (after a spawn, an exit or a stop).
func (s *sender) Poke() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// run sends until ctx is done. After a failure it retries sooner than the
// interval, backing off exponentially with jitter but never waiting longer
// than one interval, so delivery resumes within an interval of the queen
// coming back.
//
// A poke (a spawn, an exit) sends at once, but never sooner than pokeGap
// after the previous poked heartbeat: pokes that come faster (a churn of
// spawns and stops) share a heartbeat instead of running into the
// queen's rate limit, after which the hive would back off for longer.
// The interval's own heartbeats do not count: an exit just after one
// goes out at once, not up to pokeGap later.
func (s *sender) run(ctx context.Context) {
	wait := time.Duration(0)
	var lastPoked time.Time
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.poke:
			t.Stop()
			if gap := pokeGap - time.Since(lastPoked); gap > 0 {
				g := time.NewTimer(gap)
				select {
				case <-ctx.Done():
					g.Stop()
					return
				case <-g.C:
				}
			}
			lastPoked = time.Now()
		case <-t.C:
		}
		if err := s.send(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = s.backoff()
			continue
		}
		wait = s.interval
	}
}

// backoff returns the wait before the next retry: interval/8, doubling
// per consecutive failure, capped at the interval, with ±20 % jitter.
func (s *sender) backoff() time.Duration {
	s.mu.Lock()
	n := s.failures
	s.mu.Unlock()
	d := s.interval / 8
	for i := 1; i < n && d < s.interval; i++ {
		d *= 2
	}
	d = min(d, s.interval)
	jitter := 0.8 + 0.4*rand.Float64()
	return min(time.Duration(float64(d)*jitter), s.interval)
}

// send posts one heartbeat with the current state. A queen that ignored
// it (it holds a newer sequence number of this session: a queen that saw
// another hive speak with this session, or a clock of ours gone wrong)
// gets a new session at once, so the hive is never silently ignored.
//
// A worker's static fields go when the queen has not got them: the first
// heartbeat of a session carries all, later ones only what is new or
// changed, and a queen that lacks some (it restarted) says so and gets
// them all at once. After a failure, nothing is assumed delivered.
func (s *sender) send(ctx context.Context) error {
	hb, carried := s.heartbeat(false)
	ack, err := s.post(ctx, hb)
	if err == nil && ack.Ignored {
		s.mu.Lock()
		old := s.session
		s.session, s.seq = newSession(), 0
		s.mu.Unlock()
		s.log.Warn("queen ignored our heartbeat as out of date; starting a new session", "queen", s.url, "old_session", old)
		clear(s.sent)
		hb, carried = s.heartbeat(true)
		ack, err = s.post(ctx, hb)
	}
	if err == nil && ack.NeedStatic {
		s.took(hb, nil)
		clear(s.sent)
		hb, carried = s.heartbeat(true)
		ack, err = s.post(ctx, hb)
	}
	if err == nil {
		s.took(hb, carried)
		s.logDropped(ack)
	} else {
		clear(s.sent)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if err != nil {
		s.failures++
		s.failedN++
		s.lastErr = ids.Clean(err.Error(), 512)
		// A queen that answers and refuses (a wrong token, another hive's
		// id, a bound) is told apart from one that cannot be reached: the
		// fix is in the settings, not the network.
		what := "queen unreachable"
		if se := (*api.StatusError)(nil); errors.As(err, &se) && se.Code >= 400 && se.Code < 500 {
			what = "queen refused the heartbeat"
		}
		switch {
		case s.failures == 1:
			s.failedAt, s.lastLog = now, now
			s.log.Warn(what+"; the hive keeps working and retries", "queen", s.url, "err", err)
		case now.Sub(s.lastLog) >= 30*time.Second:
			s.lastLog = now
			s.log.Warn(what+", still", "queen", s.url, "failures", s.failures, "since", s.failedAt.Format(time.RFC3339), "err", err)
		}
		return err
	}
	if s.failures > 0 {
		s.log.Info("queen reachable again", "queen", s.url, "failures", s.failures, "down_for", now.Sub(s.failedAt).Round(time.Millisecond))
		s.failures = 0
	}
	s.delivered = now
	s.sentN++
	s.lastErr = ""
	return nil
}

// logDropped logs the worker entries the queen refused, each at most
// once a minute.
func (s *sender) logDropped(ack api.HeartbeatAck) {
	if len(ack.Dropped) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, d := range ack.Dropped {
		if now.Sub(s.dropLog[d.ID]) < time.Minute {
			continue
		}
		if len(s.dropLog) > 4096 {
			clear(s.dropLog)
		}
		s.dropLog[d.ID] = now
		s.log.Warn("queen refused a worker entry", "queen", s.url, "worker", d.ID, "reason", d.Reason)
	}
}

func (s *sender) post(ctx context.Context, hb api.Heartbeat) (api.HeartbeatAck, error) {
	var ack api.HeartbeatAck
	body, err := json.Marshal(hb)
	if err != nil {
		return ack, fmt.Errorf("encode heartbeat: %w", err)
	}
	gz := len(body) > gzipAbove
	if gz {
		if body, err = apiclient.Gzip(body); err != nil {
			return ack, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, max(s.interval, 2*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return ack, err
	}
	req.Header.Set("Content-Type", "application/json")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return ack, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = dec.Decode(&eb)
		return ack, fmt.Errorf("queen answered %w", &api.StatusError{Code: resp.StatusCode, Msg: ids.Clean(eb.Error, 512)})
	}
	if err := dec.Decode(&ack); err != nil {
		return ack, fmt.Errorf("queen's answer: %w", err)
	}
	return ack, nil
}

// final sends one last heartbeat on shutdown, bounded by ctx.
func (s *sender) final(ctx context.Context) error {
	hb, _ := s.heartbeat(false)
	_, err := s.post(ctx, hb)
	return err
}

// info reports this queen's delivery, for /v1/info.
func (s *sender) info() api.QueenLink {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := "ok"
	switch {
	case s.failures > 0:
		state = "failing"
	case s.delivered.IsZero():
		state = "connecting"
	}
	return api.QueenLink{URL: s.base, State: state, SessionID: s.session, Failures: s.failures, LastError: s.lastErr, FailingSince: s.failingSince(),
		LastDelivered: s.delivered, Sent: s.sentN, Failed: s.failedN}
}

func (s *sender) failingSince() time.Time {
	if s.failures == 0 {
		return time.Time{}
	}
	return s.failedAt
}
