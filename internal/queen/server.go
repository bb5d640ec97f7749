// Package queen is queen-rbee's daemon: the heartbeat endpoint feeding the
// registry, the query API, the SSE stream, and the loops that expire hives
// and publish a summary.
package queen

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/dashboard"
	"github.com/rbee-dev/rbee/internal/httpx"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/limits"
	"github.com/rbee-dev/rbee/internal/metrics"
	"github.com/rbee-dev/rbee/internal/registry"
	"github.com/rbee-dev/rbee/internal/stream"
)

// Config configures the queen. It needs an operator token or Insecure.
type Config struct {
	Listen  string        // "" means 127.0.0.1:7833; port 0 picks a free one
	HiveTTL time.Duration // 0 means 90 s
	// Tokens are the credentials: the operator's, a read-only one, and
	// one per hive that lets it post its own heartbeats only.
	Tokens auth.Tokens
	// Insecure serves without credentials (--insecure-no-auth).
	Insecure bool
	// AllowedHosts are extra names the Host header may carry.
	AllowedHosts []string
	// MaxHives bounds the registry; 0 means registry.DefaultMaxHives.
	MaxHives int
	// MaxConns caps open connections; 0 means MaxHives plus the stream
	// clients plus 1024.
	MaxConns int
	// TLSCert and TLSKey, both set, make the queen serve HTTPS.
	TLSCert, TLSKey string
	Version         string
	Logger          *slog.Logger
	// SweepEvery is how often staleness is checked; 0 means 100 ms.
	SweepEvery time.Duration
	// SummaryEvery is how often the "queen" summary event goes out; 0
	// means 5 s.
	SummaryEvery time.Duration
	// SaturatedGPUPct is the SM use of a worker's busiest GPU at which it
	// takes no more requests; 0 means 90.
	SaturatedGPUPct float64
	// ReservationTTL is how long a placement's VRAM stays reserved; 0
	// means 30 s.
	ReservationTTL time.Duration
	// MaxBody bounds a heartbeat body; 0 means api.MaxHeartbeatBody.
	MaxBody int64
	Stream  stream.Config
	// Now is the queen's clock; nil means time.Now.
	Now func() time.Time
}

// Server is a running queen.
type Server struct {
	cfg     Config
	log     *slog.Logger
	reg     *registry.Registry
	broker  *stream.Broker
	guard   *auth.Guard
	tls     *tls.Config // nil: plain HTTP
	started time.Time
	addr    net.Addr
	ln      *httpx.Limited

	refused  refusals // heartbeats refused, by reason
	dropLogs logLimiter
	// decoding bounds how many heartbeat bodies are decoded at once: each
	// may take several times MaxBody in memory while it is.
	decoding chan struct{}

	metrics *prometheus.Registry
	ingest  prometheus.Histogram
}

// The defaults of Config's settings, applied in one place (withDefaults);
// the daemon's flags name the same.
const (
	DefaultListen           = api.QueenAddr
	DefaultMaxStreamClients = 1000
	// sweepEvery and summaryEvery pace the expiry loop and the log's
	// summary line.
	sweepEvery   = 100 * time.Millisecond
	summaryEvery = 5 * time.Second
)

// withDefaults returns cfg with each unset setting that has a default set
// to it.
func (cfg Config) withDefaults() Config {
	cfg.Listen = cmp.Or(cfg.Listen, DefaultListen)
	cfg.SweepEvery = cmp.Or(cfg.SweepEvery, sweepEvery)
	cfg.SummaryEvery = cmp.Or(cfg.SummaryEvery, summaryEvery)
	cfg.MaxBody = cmp.Or(cfg.MaxBody, api.MaxHeartbeatBody)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.MaxHives = cmp.Or(cfg.MaxHives, registry.DefaultMaxHives)
	cfg.Stream.MaxClients = cmp.Or(cfg.Stream.MaxClients, DefaultMaxStreamClients)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, cfg.MaxHives+cfg.Stream.MaxClients+1024)
	return cfg
}

// New builds a queen; Run starts it.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	g, err := auth.NewGuard(auth.GuardConfig{Tokens: cfg.Tokens, Insecure: cfg.Insecure, AllowedHosts: cfg.AllowedHosts,
		Open: append([]string{"/healthz"}, dashboard.Paths...), QueryToken: []string{"/v1/heartbeats/stream"}})
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if cfg.TLSCert != "" {
		if tc, err = httpx.ServerTLS(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, guard: g, tls: tc, started: cfg.Now(),
		decoding: make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0)))}
	cfg.Stream.Coalesce = api.EventHiveTelemetry
	cfg.Stream.Logger = cfg.Logger
	cfg.Stream.Snapshot = s.snapshot
	if s.broker, err = stream.New(cfg.Stream); err != nil {
		return nil, err
	}
	s.reg = registry.New(registry.Config{HiveTTL: cfg.HiveTTL, Now: cfg.Now, Publish: s.publish, MaxHives: cfg.MaxHives,
		Telemetry: s.broker.CoalescedWanted, SaturatedGPUPct: cfg.SaturatedGPUPct, ReservationTTL: cfg.ReservationTTL})
	s.metrics = s.newMetrics()
	return s, nil
}

func (s *Server) publish(e registry.Event) {
	if err := s.broker.Publish(stream.Event{Type: e.Type, Key: e.Hive, Models: e.Models, Data: e.Data, View: e.View}); err != nil {
		s.log.Warn("publish event", "type", e.Type, "err", err)
	}
}

// snapshot is the data of the event that opens a stream: the hives and
// workers the client's filter takes, without session ids (streams are
// for readers).
func (s *Server) snapshot(f stream.Filter, resync bool) any {
	hs := s.reg.Hives(f.Hive)
	for i := range hs {
		hs[i].SessionID = ""
		if f.Model != "" {
			hs[i].Workers = api.WorkersOfModel(hs[i].Workers, f.Model)
		}
	}
	return api.Snapshot{Resync: resync, Hives: hs}
}

// Close disconnects every stream client and stops the broker; Run does it
// on its own, a caller serving only Handler must call it.
func (s *Server) Close(ctx context.Context) error { return s.broker.Shutdown(ctx) }

// Registry returns the queen's registry.
func (s *Server) Registry() *registry.Registry { return s.reg }

// Handler returns the queen's HTTP API: readers may GET and stream,
// hives may post their own heartbeats, the operator may do everything.
func (s *Server) Handler() http.Handler {
	g := s.guard
	mux := http.NewServeMux()
	mux.Handle("POST /v1/hive-heartbeat", g.Allow(auth.NeedHeartbeat, httpx.HandlerFunc(s.heartbeat)))
	mux.Handle("GET /v1/hives", g.Allow(auth.NeedRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs := s.reg.Hives(nil)
		for i := range hs {
			hs[i] = forReader(r, hs[i])
		}
		httpx.WriteJSON(w, 200, hs)
	})))
	mux.Handle("GET /v1/hives/{id}", g.Allow(auth.NeedRead, httpx.HandlerFunc(s.hive)))
	mux.Handle("GET /v1/workers", g.Allow(auth.NeedRead, httpx.HandlerFunc(s.workers)))
	mux.Handle("GET /v1/schedule", g.Allow(auth.NeedRead, httpx.HandlerFunc(s.schedule)))
	// Reservations hold VRAM for every scheduler: the operator's only.
	mux.Handle("GET /v1/reservations", g.Allow(auth.NeedOperator, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, 200, s.reg.Reservations())
	})))
	mux.Handle("DELETE /v1/reservations/{id}", g.Allow(auth.NeedOperator, httpx.HandlerFunc(s.release)))
	mux.Handle("GET /v1/heartbeats/stream", g.Allow(auth.NeedRead, s.broker))
	mux.Handle("GET /v1/info", g.Allow(auth.NeedRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { httpx.WriteJSON(w, 200, s.info()) })))
	page := dashboard.Handler()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /static/", page)
	mux.Handle("GET /metrics", g.Allow(auth.NeedRead, metrics.Handler(s.metrics)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return g.Handler(httpx.JSONErrors(mux))
}

// forReader hides what only the operator may see: the session id, which
// would let its holder try to speak for the hive.
func forReader(r *http.Request, h api.Hive) api.Hive {
	if auth.PrincipalOf(r.Context()).Role != auth.RoleOperator {
		h.SessionID = ""
	}
	return h
}

func (s *Server) info() api.QueenInfo {
	addr := s.cfg.Listen
	if s.addr != nil {
		addr = s.addr.String()
	}
	ttl := s.reg.HiveTTL()
	refused := s.requestRefusals()
	for k, v := range s.heartbeatRefusals() {
		refused["heartbeat_"+k] = v
	}
	rs := s.reg.Stats()
	refused["worker_entries_dropped"] = rs.DroppedWorkers
	refused["values_clamped"] = rs.Clamped
	return api.QueenInfo{QueenSummary: s.summary(), Listen: addr, HiveTTLS: ttl.Seconds(), AuthRequired: !s.cfg.Insecure,
		TLS: s.tls != nil, MaxHives: s.cfg.MaxHives, Refused: refused}
}

func (s *Server) summary() api.QueenSummary {
	rs, bs := s.reg.Stats(), s.broker.Stats()
	return api.QueenSummary{
		Version: s.cfg.Version, UptimeS: s.cfg.Now().Sub(s.started).Seconds(),
		Hives: rs.Hives, Online: rs.Online, Stale: rs.Stale, Workers: rs.Workers,
		Heartbeats: rs.Heartbeats, Ignored: rs.Ignored, Rejected: rs.Rejected,
		Clients: bs.Clients, Coalesced: bs.Coalesced, Evicted: bs.Evicted,
	}
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	defer func() { s.ingest.Observe(time.Since(start).Seconds()) }()
	select {
	case s.decoding <- struct{}{}:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	hb := getHeartbeat()
	defer putHeartbeat(hb)
	err := httpx.DecodeFast(w, r, s.cfg.MaxBody, hb)
	<-s.decoding
	if err != nil {
		s.refused.add("decode")
		return s.rejected(r, err)
	}
	if p := auth.PrincipalOf(r.Context()); p.Role == auth.RoleHive && p.HiveID != hb.HiveID {
		s.refused.add("wrong_hive")
		s.log.Warn("heartbeat refused: a hive token used for another hive", "remote", r.RemoteAddr, "token_of", p.HiveID, "hive_id", ids.Quote(hb.HiveID))
		return api.Errorf(api.ErrForbidden, "this token belongs to hive %s and may not post heartbeats for %s", p.HiveID, ids.Quote(hb.HiveID))
	}
	res, err := s.reg.Ingest(*hb)
	switch {
	case errors.Is(err, registry.ErrTooManyHives):
		w.Header().Set("Retry-After", "30")
	case errors.Is(err, registry.ErrRateLimited):
		w.Header().Set("Retry-After", "1")
	}
	if err != nil {
		return s.rejected(r, err)
	}
	if res.New || res.Restarted {
		s.log.Info("hive online", "hive", hb.HiveID, "url", hb.HiveURL, "restarted", res.Restarted, "workers", len(hb.Workers))
	}
	if fx := res.Fixes; (len(fx.Dropped) > 0 || len(fx.Clamped) > 0) && s.dropLogs.allow(hb.HiveID, s.cfg.Now()) {
		s.log.Warn("heartbeat values refused", "hive", hb.HiveID, "dropped_workers", fx.Dropped, "clamped", fx.Clamped)
	}
	httpx.WriteJSON(w, http.StatusOK, api.HeartbeatAck{Ignored: res.Ignored, Dropped: res.Fixes.Dropped, Clamped: len(res.Fixes.Clamped), NeedStatic: res.NeedStatic})
	return nil
}

// rejected logs a refused heartbeat (at most every 10 s per peer) and
// returns its error for the answer.
func (s *Server) rejected(r *http.Request, err error) error {
	if s.dropLogs.allow("reject "+r.RemoteAddr, s.cfg.Now()) {
		s.log.Warn("heartbeat rejected", "remote", r.RemoteAddr, "err", err)
	}
	return err
}

func (s *Server) hive(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathValue(r, "id", ids.ValidHiveID)
	if err != nil {
		return err
	}
	h, ok := s.reg.Hive(id)
	if !ok {
		return api.Errorf(api.ErrNotFound, "no hive %s", ids.Quote(id))
	}
	httpx.WriteJSON(w, 200, forReader(r, h))
	return nil
}

func (s *Server) workers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := registry.Filter{Model: q.Get("model"), Hive: q.Get("hive"), State: api.State(q.Get("state"))}
	switch f.State {
	case "", api.StateStarting, api.StateReady, api.StateUnhealthy, api.StateExited:
	default:
		return api.Errorf(api.ErrInvalid, "state %s: want starting, ready, unhealthy or exited", ids.Quote(string(f.State)))
	}
	if v := q.Get("idle"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return api.Errorf(api.ErrInvalid, "idle %s: want true or false", ids.Quote(v))
		}
		f.Idle = &b
	}
	ws := s.reg.Workers(f)
	if ws == nil {
		ws = []api.FleetWorker{}
	}
	httpx.WriteJSON(w, 200, ws)
	return nil
}

// scheduleParams are the parameters /v1/schedule takes.
var scheduleParams = []string{"model", "vram_bytes", "gpus", "all"}

func (s *Server) schedule(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k, v := range q {
		if !slices.Contains(scheduleParams, k) {
			return api.Errorf(api.ErrInvalid, "unknown parameter %s (schedule takes %s)", ids.Quote(k), strings.Join(scheduleParams, ", "))
		}
		if len(v) > 1 {
			return api.Errorf(api.ErrInvalid, "parameter %s given %d times", k, len(v))
		}
	}
	// Reservations hold VRAM for everyone: only the operator makes them.
	// A read-only token (a dashboard's, a router's) gets the placement
	// unreserved.
	req := registry.Request{Model: q.Get("model"), NoReserve: auth.PrincipalOf(r.Context()).Role != auth.RoleOperator}
	if req.Model == "" {
		return api.Errorf(api.ErrInvalid, "model is required")
	}
	if v := q.Get("vram_bytes"); v != "" {
		n, err := limits.ParseMemory("vram_bytes", v)
		if err != nil {
			return err
		}
		req.VRAMBytes = uint64(n)
	}
	if v := q.Get("gpus"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > registry.MaxGPUs {
			return api.Errorf(api.ErrInvalid, "gpus %s: want a whole number from 1 to %d", ids.Quote(v), registry.MaxGPUs)
		}
		req.GPUs = n
	}
	if v := q.Get("all"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return api.Errorf(api.ErrInvalid, "all %s: want true or false", ids.Quote(v))
		}
		req.All = b
	}
	d, err := s.reg.Schedule(req)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, 200, d)
	return nil
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) error {
	// A reservation id is a name (rsv-<hex>): anything else is no id.
	id, err := httpx.PathValue(r, "id", ids.ValidName)
	if err != nil {
		return err
	}
	if err := s.reg.Release(id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Run listens, serves until ctx is done, then finishes in-flight requests,
// closes the streams and returns. ready, if not nil, receives the bound
// address.
func (s *Server) Run(ctx context.Context, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	s.addr = ln.Addr()
	s.ln = httpx.NewLimited(ln, httpx.ConnLimits{Max: s.cfg.MaxConns, Unauthenticated: min(maxUnauthConns, max(s.cfg.MaxConns/4, 1)),
		PerAddress: maxConnsPerAddress, MinAge: httpx.EvictMinAge, FirstByte: httpx.FirstByteTimeout})
	s.log.Info("listening on "+ln.Addr().String(), "tls", s.tls != nil, "auth", !s.cfg.Insecure)
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	s.log.Info("dashboard at "+scheme+"://"+ln.Addr().String()+"/", "token", "read-only (queen-rbee dashboard prints the URL with it)")
	if ready != nil {
		ready(ln.Addr())
	}
	srv := httpx.NewServer(s.Handler(), s.tls, s.log)
	// Streams never end on their own: close them when shutdown starts.
	srv.RegisterOnShutdown(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.broker.Shutdown(sctx)
	})
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	go s.loops(loopCtx)
	errc := make(chan error, 1)
	go func() { errc <- httpx.Serve(srv, s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// The queen's bounds on connections that have not shown a token yet (see
// httpx.ConnLimits): enough for a fleet of hives reconnecting at once,
// each authenticated by its first heartbeat, and per address enough for
// many hives behind one NAT. Authenticated ones (hives, stream clients,
// the CLIs) are never evicted for a newcomer.
const (
	maxUnauthConns     = 1024
	maxConnsPerAddress = 64
)

// logSweep says in the queen's log (journalctl) when a hive goes silent
// and when it is dropped: an operator reading the log learns it there,
// not only from the stream.
func (s *Server) logSweep(evs []registry.Event) {
	for _, e := range evs {
		g, ok := e.Data.(api.HiveGone)
		if !ok {
			continue
		}
		switch e.Type {
		case api.EventHiveStale:
			s.log.Warn("hive stale: no heartbeat", "hive", g.HiveID, "last_seen", g.LastSeen.Format(time.RFC3339), "why", g.Reason)
		case api.EventHiveRemoved:
			s.log.Warn("hive removed", "hive", g.HiveID, "last_seen", g.LastSeen.Format(time.RFC3339), "why", g.Reason, "workers", len(g.WorkerIDs))
		}
	}
}

func (s *Server) loops(ctx context.Context) {
	sweep := time.NewTicker(s.cfg.SweepEvery)
	defer sweep.Stop()
	sum := time.NewTicker(s.cfg.SummaryEvery)
	defer sum.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			s.logSweep(s.reg.Sweep())
		case <-sum.C:
			if err := s.broker.Publish(stream.Event{Type: api.EventQueen, Data: s.summary()}); err != nil {
				s.log.Debug("publish summary", "err", err)
			}
		}
	}
}
