package hive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/telemetry"
)

// gzipAbove is the body size from which heartbeats are compressed.
const gzipAbove = 1024

// sender posts heartbeats to the queen on its own goroutine, so a slow
// collection pass (a GPU query near its deadline) never delays one: it
// sends the latest state every interval and at once when poked.
type sender struct {
	url      string // the queen's heartbeat endpoint
	token    string
	interval time.Duration
	build    func(seq uint64) telemetry.Heartbeat
	log      *slog.Logger
	client   *http.Client

	poke chan struct{}
	seq  uint64

	mu        sync.Mutex
	failures  int
	failedAt  time.Time
	lastLog   time.Time
	delivered time.Time
}

func newSender(queenURL, token string, interval time.Duration, log *slog.Logger, build func(uint64) telemetry.Heartbeat) *sender {
	return &sender{
		url: strings.TrimRight(queenURL, "/") + "/v1/hive-heartbeat", token: token, interval: interval,
		build: build, log: log, poke: make(chan struct{}, 1),
		client: &http.Client{Timeout: max(interval, 2*time.Second)},
	}
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
func (s *sender) run(ctx context.Context) {
	wait := time.Duration(0)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.poke:
			t.Stop()
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

// send posts one heartbeat with the current state.
func (s *sender) send(ctx context.Context) error {
	s.seq++
	hb := s.build(s.seq)
	err := s.post(ctx, hb)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if err != nil {
		s.failures++
		switch {
		case s.failures == 1:
			s.failedAt, s.lastLog = now, now
			s.log.Warn("queen unreachable; the hive keeps working and retries", "queen", s.url, "err", err)
		case now.Sub(s.lastLog) >= 30*time.Second:
			s.lastLog = now
			s.log.Warn("queen still unreachable", "queen", s.url, "failures", s.failures, "since", s.failedAt.Format(time.RFC3339), "err", err)
		}
		return err
	}
	if s.failures > 0 {
		s.log.Info("queen reachable again", "queen", s.url, "failures", s.failures, "down_for", now.Sub(s.failedAt).Round(time.Millisecond))
		s.failures = 0
	}
	s.delivered = now
	return nil
}

func (s *sender) post(ctx context.Context, hb telemetry.Heartbeat) error {
	body, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("encode heartbeat: %w", err)
	}
	gz := len(body) > gzipAbove
	if gz {
		if body, err = api.Gzip(body); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, max(s.interval, 2*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
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
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 4096)).Decode(&eb)
		return fmt.Errorf("queen answered %s: %s", resp.Status, eb.Error)
	}
	return nil
}

// final sends one last heartbeat on shutdown, bounded by ctx.
func (s *sender) final(ctx context.Context) error {
	s.seq++
	return s.post(ctx, s.build(s.seq))
}

// state reports delivery, for /v1/info.
func (s *sender) state() (failures int, delivered time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures, s.delivered
}
