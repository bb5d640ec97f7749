// Package hive is rbee-hive's daemon: the worker API, the collection loop,
// and the heartbeat sender.
package hive

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/apiclient"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/httpx"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/launch"
	"github.com/rbee-dev/rbee/internal/limits"
	"github.com/rbee-dev/rbee/internal/metrics"
	"github.com/rbee-dev/rbee/internal/monitor"
	"github.com/rbee-dev/rbee/internal/privdir"
)

// Config configures a hive.
type Config struct {
	HiveID string // "" means the hostname
	Listen string // "" means 127.0.0.1:7835; port 0 picks a free one
	// QueenURLs are the queens heartbeats go to, each on its own (its
	// sender, backoff and session): a dead or slow queen never delays the
	// others. None means no heartbeats are sent.
	QueenURLs []string
	// QueenToken is the credential heartbeats carry: the hive's own token
	// from the queen's --hive-tokens, or an operator token; "" means the
	// hive's operator token.
	QueenToken string
	// QueenCA, when set, is a PEM file of the CA that signed the queen's
	// certificate (a private CA).
	QueenCA string
	// InsecureNoTLS allows sending the token to a non-loopback queen over
	// plain HTTP.
	InsecureNoTLS bool
	// HiveURL is how the queen reaches this hive; "" means derived from
	// the bound address.
	HiveURL  string
	Interval time.Duration // 0 means 1 s
	// Tokens are the credentials the hive API accepts: the operator's
	// (everything) and a read-only one (GET). Only the operator may
	// spawn or stop.
	Tokens auth.Tokens
	// Insecure serves without credentials (--insecure-no-auth).
	Insecure bool
	// AllowedHosts are extra names the Host header may carry.
	AllowedHosts []string
	// TLSCert and TLSKey, both set, make the hive serve HTTPS.
	TLSCert, TLSKey string
	// BinDir, when set, is the only directory workers may be spawned from
	// (resolved without links). A hive listening beyond loopback needs it.
	BinDir string
	// Workers says how workers run: Platform (cgroups, procfs),
	// StopGrace, User, PidsMax and the log bounds (LogMaxSize, LogFiles),
	// as monitor.Config documents them. The hive sets the rest itself,
	// from the settings here: Logs (LogDir), BinDir, SpecDir (StateDir),
	// GPU, OnChange and Logger.
	Workers monitor.Config
	// StopWorkersOnExit stops every worker when the hive shuts down;
	// otherwise they keep running for the next hive to adopt.
	StopWorkersOnExit bool
	// ExitedRetention is how long an exited worker stays listed, here and
	// so on the queen (docker ps -a), until removed (rbee-hive rm,
	// prune); 0 means DefaultExitedRetention. At most MaxExitedKept are
	// kept, the oldest exits forgotten first.
	ExitedRetention time.Duration
	Version         string
	Logger          *slog.Logger

	// LogDir is where workers' output goes (<id>.log); "" means
	// <StateDir>/logs, bounded by Workers' log size and files.
	LogDir string
	// DiscardLogs discards workers' output instead (--worker-log-dir "").
	DiscardLogs bool
	// StateDir keeps what outlives the hive process: the running
	// workers' spawn requests (workers/), for the hive that adopts them.
	// "" keeps none.
	StateDir string
	GPU      *gpu.Sampler // nil means no GPU telemetry
	GPUWhy   string       // why this backend was chosen
	// GPUSampleInPass runs a GPU query in every collection pass and
	// waits for it, so that every lifecycle event waits for the query
	// too: how the hive worked before the GPU had a clock of its own,
	// kept to compare against (--gpu-sample-in-pass). By default Run
	// samples the GPU every Interval and passes take the newest sample.
	GPUSampleInPass bool
	MaxWorkers      int // 0 means 1024
}

// The defaults of Config's settings, applied in one place (withDefaults);
// the daemon's flags name the same.
const (
	DefaultListen          = api.HiveAddr
	DefaultInterval        = time.Second
	DefaultExitedRetention = time.Hour
	DefaultMaxWorkers      = 1024
	// MaxExitedKept bounds the exited records kept (each goes in every
	// heartbeat): a worker that crash-loops under a restart policy is one
	// id, but many short-lived ones would otherwise pile up.
	MaxExitedKept = 256
)

// withDefaults returns c with each unset setting that has a default set
// to it: Listen, Interval, ExitedRetention, MaxWorkers, Logger, and the
// token heartbeats carry (QueenToken: the operator token unless given).
func (c Config) withDefaults() Config {
	c.Listen = cmp.Or(c.Listen, DefaultListen)
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.ExitedRetention = cmp.Or(c.ExitedRetention, DefaultExitedRetention)
	c.MaxWorkers = cmp.Or(c.MaxWorkers, DefaultMaxWorkers)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.QueenToken == "" && len(c.QueenURLs) > 0 {
		c.QueenToken = c.Tokens.Operator
	}
	return c
}

// Check validates the settings that need nothing from the system, as New
// will take them (with their defaults), so a daemon can refuse a bad
// command line before it creates any cgroup. It changes nothing.
func (c Config) Check() error {
	c = c.withDefaults()
	if c.Tokens.Operator == "" && !c.Insecure {
		return fmt.Errorf("%w: the hive needs an operator token (--token-file, %s, or the one generated in --state-dir), or --insecure-no-auth", auth.ErrNoToken, auth.EnvToken)
	}
	if !auth.IsLoopback(c.Listen) && c.BinDir == "" {
		return fmt.Errorf("listening beyond loopback (--listen %s) needs --worker-bin-dir: spawning arbitrary binaries as this user is remote code execution", c.Listen)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.ExitedRetention < 0 {
		return fmt.Errorf("--exited-retention %v: want a positive duration", c.ExitedRetention)
	}
	if c.HiveID != "" {
		if err := ids.ValidHiveID(c.HiveID); err != nil {
			return fmt.Errorf("--hive-id %s: %w", ids.Quote(c.HiveID), err)
		}
	}
	if c.QueenToken != "" {
		for _, q := range c.QueenURLs {
			if err := auth.CheckTransport(q, c.InsecureNoTLS); err != nil {
				return fmt.Errorf("--queen: %w", err)
			}
		}
	}
	return nil
}

// Server is a hive.
type Server struct {
	snap    atomic.Pointer[snapshot]
	metrics *hiveMetrics
	passMu  sync.Mutex    // one pass (or upsert) at a time
	passNow chan struct{} // a change asks for a pass at once
	cfg     Config
	log     *slog.Logger
	mon     *monitor.Monitor
	sends   []*sender // one per queen
	node    *nodeReader
	guard   *auth.Guard
	tls     *tls.Config // nil: plain HTTP
	binDir  *launch.BinDir
	logDir  *privdir.Dir // --worker-log-dir, checked and open; nil: discarded
	addr    net.Addr
	ln      *httpx.Limited // set before the API serves
	url     string
}

// New prepares a hive; Run starts it.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.HiveID == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("hive id: %w", err)
		}
		if cfg.HiveID, err = ids.HiveIDFromHostname(h); err != nil {
			return nil, fmt.Errorf("hive id: %w (set --hive-id)", err)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, passNow: make(chan struct{}, 1)}
	if err := s.openLogDir(); err != nil {
		return nil, err
	}
	if cfg.BinDir != "" {
		d, err := launch.NewBinDir(cfg.BinDir)
		if err != nil {
			return nil, err
		}
		s.binDir = d
	}
	allowed := slices.Clone(cfg.AllowedHosts)
	if cfg.HiveURL != "" {
		if u, err := url.Parse(cfg.HiveURL); err == nil && u.Hostname() != "" {
			allowed = append(allowed, u.Hostname())
		}
	}
	g, err := auth.NewGuard(auth.GuardConfig{Tokens: cfg.Tokens, Insecure: cfg.Insecure, AllowedHosts: allowed, Open: []string{"/healthz"}})
	if err != nil {
		return nil, err
	}
	s.guard = g
	if cfg.TLSCert != "" {
		tc, err := httpx.ServerTLS(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		s.tls = tc
	}
	src := GPUSource(cfg.GPU, cfg.GPUSampleInPass)
	mc := cfg.Workers
	mc.Logs, mc.BinDir, mc.SpecDir, mc.GPU, mc.OnChange, mc.Logger = s.logDir, s.binDir, specDir(cfg.StateDir), src, s.changed, cfg.Logger
	s.mon = monitor.New(mc)
	s.node = &nodeReader{proc: cfg.Workers.Platform.Proc, sampler: cfg.GPU}
	// The sender exists from the start (it runs only in Run): exit
	// watchers of adopted workers may poke it while Run is starting.
	var ca *tls.Config
	if cfg.QueenCA != "" && len(cfg.QueenURLs) > 0 {
		if ca, err = apiclient.ClientTLS(cfg.QueenCA); err != nil {
			return nil, fmt.Errorf("--queen-ca: %w", err)
		}
	}
	for _, q := range cfg.QueenURLs {
		s.sends = append(s.sends, newSender(senderConfig{QueenURL: q, Token: cfg.QueenToken, Interval: cfg.Interval, TLS: ca, Log: cfg.Logger, Build: s.heartbeatBase}))
	}
	s.metrics = s.newMetrics()
	return s, nil
}

// Monitor returns the hive's process monitor.
func (s *Server) Monitor() *monitor.Monitor { return s.mon }

// clipPIDs keeps a heartbeat's pid lists within what the queen accepts:
// a host with runaway workers must still report them. It copies what it
// cuts: ws belongs to a published snapshot.
func clipPIDs(ws []api.Worker) []api.Worker {
	total := 0
	for _, w := range ws {
		total += len(w.PIDs)
	}
	if total <= api.MaxHeartbeatPIDs {
		return ws
	}
	ws = slices.Clone(ws)
	each := api.MaxHeartbeatPIDs / len(ws)
	for i := range ws {
		if len(ws[i].PIDs) > each {
			ws[i].PIDs = ws[i].PIDs[:each]
			ws[i].Errors = append(slices.Clip(ws[i].Errors), fmt.Sprintf("pids: list cut to %d to fit the heartbeat", each))
		}
	}
	return ws
}

// Handler returns the hive's HTTP API: the operator may do everything, a
// read-only token may GET.
func (s *Server) Handler() http.Handler {
	g := s.guard
	mux := http.NewServeMux()
	mux.Handle("POST /v1/workers", g.Allow(auth.NeedOperator, httpx.HandlerFunc(s.spawn)))
	mux.Handle("GET /v1/workers", g.Allow(auth.NeedRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws := s.latest().workers
		if ws == nil {
			ws = []api.Worker{}
		}
		httpx.WriteJSON(w, 200, ws)
	})))
	mux.Handle("GET /v1/workers/{id}", g.Allow(auth.NeedRead, httpx.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		id, err := workerID(r)
		if err != nil {
			return err
		}
		ws := s.latest().workers
		i, found := slices.BinarySearchFunc(ws, id, func(w api.Worker, id string) int { return strings.Compare(w.ID, id) })
		if !found {
			return fmt.Errorf("worker %s: %w", ids.Quote(id), monitor.ErrNotFound)
		}
		httpx.WriteJSON(w, 200, ws[i])
		return nil
	})))
	mux.Handle("DELETE /v1/workers/{id}", g.Allow(auth.NeedOperator, httpx.HandlerFunc(s.stop)))
	mux.Handle("DELETE /v1/workers/{id}/record", g.Allow(auth.NeedOperator, httpx.HandlerFunc(s.remove)))
	mux.Handle("POST /v1/workers/prune", g.Allow(auth.NeedOperator, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		removed := s.mon.Prune()
		s.drop(removed...)
		httpx.WriteJSON(w, 200, api.Pruned{Removed: removed})
	})))
	mux.Handle("GET /v1/workers/{id}/logs", g.Allow(auth.NeedRead, httpx.HandlerFunc(s.logs)))
	mux.Handle("GET /v1/info", g.Allow(auth.NeedRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := s.Info()
		if auth.PrincipalOf(r.Context()).Role != auth.RoleOperator {
			info.SessionID = "" // the operator's to know: see api.Hive
			for i := range info.Queens {
				info.Queens[i].SessionID = ""
			}
		}
		httpx.WriteJSON(w, 200, info)
	})))
	mux.Handle("GET /metrics", g.Allow(auth.NeedRead, metrics.Handler(s.metrics.reg)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return g.Handler(httpx.JSONErrors(mux))
}

// maxSpawnBody bounds a spawn request.
const maxSpawnBody = 1 << 20

func (s *Server) spawn(w http.ResponseWriter, r *http.Request) error {
	var spec api.SpawnRequest
	if err := httpx.Decode(w, r, maxSpawnBody, true, &spec); err != nil {
		return err
	}
	if n := s.mon.Live(); n >= s.cfg.MaxWorkers {
		return api.Errorf(api.ErrTooMany, "this hive already has %d workers (the limit)", n)
	}
	if err := checkCPULimit(spec.CPULimit, runtime.NumCPU()); err != nil {
		return err
	}
	rec, err := s.mon.Spawn(r.Context(), spec)
	if err != nil {
		if api.HTTPStatus(err) == http.StatusInternalServerError {
			s.log.Error("spawn failed", "worker", spec.ID(), "err", err)
		}
		return err
	}
	s.upsert(rec)
	httpx.WriteJSON(w, http.StatusCreated, rec)
	return nil
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.stopTimeout())
	defer cancel()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.stopTimeout() + 5*time.Second))
	id, err := workerID(r)
	if err != nil {
		return err
	}
	rec, err := s.mon.Stop(ctx, id)
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	s.upsert(rec)
	httpx.WriteJSON(w, 200, rec)
	return nil
}

// remove drops an exited worker's record (rbee-hive rm).
func (s *Server) remove(w http.ResponseWriter, r *http.Request) error {
	id, err := workerID(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.stopTimeout())
	defer cancel()
	if err := s.mon.Remove(ctx, id); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	s.drop(id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// workerID returns the route's worker id, refused (400) unless valid.
func workerID(r *http.Request) (string, error) {
	return httpx.PathValue(r, "id", ids.ValidWorkerID)
}

func (s *Server) stopTimeout() time.Duration {
	return s.mon.StopGrace() + 30*time.Second
}

// Info describes the hive.
func (s *Server) Info() api.HiveInfo {
	backend := "none"
	if s.cfg.GPU != nil {
		backend = s.cfg.GPU.Backend()
	}
	mi := s.mon.Info()
	i := api.HiveInfo{
		HiveID: s.cfg.HiveID, HiveURL: s.url, Listen: s.cfg.Listen, Version: s.cfg.Version,
		CgroupMode: string(mi.CgroupMode), CgroupParent: mi.CgroupParent, CgroupPlacement: mi.CgroupPlacement, LimitsEnforced: mi.LimitsEnforced,
		LimitsReason: mi.LimitsReason, GPUBackend: backend, GPUBackendReason: s.cfg.GPUWhy,
		IntervalMS: s.cfg.Interval.Milliseconds(), WorkerBinDir: s.cfg.BinDir, Workers: len(s.latest().workers),
		WorkerUser: s.cfg.Workers.User.String(), WorkerPidsMax: s.cfg.Workers.PidsMax,
		AuthRequired: !s.cfg.Insecure, TLS: s.tls != nil, Refused: s.requestRefusals(),
	}
	if s.addr != nil {
		i.Listen = s.addr.String()
	}
	for n, snd := range s.sends {
		q := snd.info()
		if n == 0 {
			// The first queen's, as before there could be several.
			i.QueenURL, i.SessionID, i.QueenFailures, i.LastDelivered = q.URL, q.SessionID, q.Failures, q.LastDelivered
		}
		i.Queens = append(i.Queens, q)
	}
	return i
}

// Run adopts the workers an earlier hive left, listens, collects every
// interval and heartbeats until ctx is done; then it stops serving, sends
// a final heartbeat and returns. Workers keep running unless
// StopWorkersOnExit. ready, if not nil, receives the bound address.
func (s *Server) Run(ctx context.Context, ready func(net.Addr)) error {
	defer s.mon.Close()
	if s.logDir != nil {
		defer s.logDir.Close()
	}
	ln, err := s.start(ctx)
	if err != nil {
		return err
	}
	srv := httpx.NewServer(s.Handler(), s.tls, s.log)
	errc := make(chan error, 1)
	s.ln = httpx.NewLimited(ln, httpx.ConnLimits{Max: maxConns, Unauthenticated: maxUnauthConns, PerAddress: maxConnsPerAddress,
		MinAge: httpx.EvictMinAge, FirstByte: httpx.FirstByteTimeout})
	go func() { errc <- httpx.Serve(srv, s.ln) }()
	if ready != nil {
		ready(ln.Addr())
	}

	loopCtx, stopLoops := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if s.cfg.GPU != nil && s.cfg.GPU.Enabled() && !s.cfg.GPUSampleInPass {
		// One sample first (bounded by its deadline), so the first
		// heartbeat has the GPUs; then one every interval, on its own
		// goroutine: no pass, and so no worker event, waits for a query.
		_, _ = s.cfg.GPU.Sample(loopCtx)
		wg.Go(func() { s.cfg.GPU.Run(loopCtx, s.cfg.Interval) })
	}
	// The first pass comes before the first heartbeat: an empty one would
	// tell the queen that every adopted worker is gone.
	s.pass(loopCtx)
	wg.Go(func() { s.collect(loopCtx) })
	for _, snd := range s.sends {
		wg.Go(func() { snd.run(loopCtx) })
	}
	select {
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	stopLoops()
	wg.Wait()
	s.leave()
	if s.cfg.GPU != nil {
		_ = s.cfg.GPU.Close()
	}
	return err
}

// start adopts the workers an earlier hive left, says how workers run,
// and listens.
func (s *Server) start(ctx context.Context) (net.Listener, error) {
	adopted, err := s.mon.Adopt(ctx)
	if err != nil {
		s.log.Warn("adopting workers", "err", err)
	}
	if len(adopted) > 0 {
		s.log.Info("adopted workers", "ids", adopted)
	}
	// The API serves the adopted workers from its first request: the first
	// pass comes only after the first GPU sample, and until then a GET of
	// an adopted worker answered 404.
	for _, rec := range s.mon.Workers() {
		s.upsert(rec)
	}
	info := s.mon.Info()
	if !info.LimitsEnforced {
		s.log.Warn("limits not enforced: workers run as plain processes", "reason", info.LimitsReason)
	} else {
		s.log.Info("workers' cgroups", "mode", info.CgroupMode, "parent", info.CgroupParent, "placement", info.CgroupPlacement)
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	s.addr = ln.Addr()
	s.url = s.cfg.HiveURL
	if s.url == "" {
		s.url = deriveURL(ln.Addr(), s.tls != nil)
	}
	s.log.Info("listening on "+ln.Addr().String(), "hive_id", s.cfg.HiveID, "hive_url", s.url, "queens", strings.Join(s.cfg.QueenURLs, ","),
		"tls", s.tls != nil, "worker_user", s.cfg.Workers.User.String())
	return ln, nil
}

// leave ends the hive's part once its loops have stopped: with
// --stop-workers-on-exit every worker is stopped and the cgroup tree
// removed; else the workers keep running for the next hive. Either way
// the queens get a last heartbeat saying so. Then, when workers keep
// running, what no worker uses goes (empty group cgroups, an empty
// parent, a systemd scope's keeper when no worker is left), with the
// monitor closed first: a restart it still had pending would otherwise
// spawn into a tree being released.
func (s *Server) leave() {
	cgm := s.cfg.Workers.Platform.Cgroups
	if s.cfg.StopWorkersOnExit {
		stopCtx, cancel := context.WithTimeout(context.Background(), s.stopTimeout())
		if err := s.mon.StopAll(stopCtx); err != nil {
			s.log.Error("stopping workers", "err", err)
		}
		cancel()
		if cgm != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := cgm.RemoveAll(rctx); err != nil {
				s.log.Warn("removing cgroup parent", "err", err)
			}
			cancel()
		}
	} else if n := s.mon.Live(); n > 0 {
		s.log.Info("workers keep running for the next hive to adopt", "workers", n)
	}
	s.finalHeartbeat()
	if s.cfg.StopWorkersOnExit {
		return
	}
	s.mon.Close()
	if cgm != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := cgm.Release(rctx); err != nil {
			s.log.Warn("removing unused cgroups", "err", err)
		}
		cancel()
	}
}

// finalHeartbeat runs a last pass, so the final heartbeat tells how the
// workers stopped on the way out ended, and sends it to every queen at
// once, none waiting on another.
func (s *Server) finalHeartbeat() {
	if len(s.sends) == 0 {
		return
	}
	pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
	s.pass(pctx)
	pcancel()
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, snd := range s.sends {
		wg.Go(func() {
			if err := snd.final(fctx); err != nil {
				s.log.Warn("final heartbeat", "queen", snd.base, "err", err)
			}
		})
	}
	wg.Wait()
}

// The hive API's connection limits (see httpx.ConnLimits): a few clients
// and the queen's schedulers talk to it, never thousands. Connections
// that have not shown the token get a quarter, and one address half of
// that: the operator's connection, once its request passes the guard, is
// never evicted by a flood, even one from its own address.
const (
	maxConns           = 256
	maxUnauthConns     = 64
	maxConnsPerAddress = 32
)

func deriveURL(a net.Addr, tls bool) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// openLogDir makes and checks the workers' log directory at start, not at
// the first spawn: the hive (root) writes there what workers print, and
// serves it to the read-only token. The default one, below the state
// directory, may be unusable (a hive not run as root, a state directory
// on a read-only mount): output is then discarded with a warning rather
// than the hive refused.
func (s *Server) openLogDir() error {
	dir, defaulted := s.cfg.LogDir, false
	if dir == "" && !s.cfg.DiscardLogs && s.cfg.StateDir != "" {
		dir, defaulted = filepath.Join(s.cfg.StateDir, "logs"), true
	}
	if dir == "" || s.cfg.DiscardLogs {
		s.cfg.LogDir = ""
		return nil
	}
	d, err := privdir.Open(dir, privdir.Options{Create: true, Mode: 0o750})
	switch {
	case err != nil && defaulted:
		s.log.Warn("workers' output is discarded: the default log directory is unusable; set --worker-log-dir", "dir", dir, "err", err)
		s.cfg.LogDir = ""
		return nil
	case err != nil:
		return fmt.Errorf("--worker-log-dir: %w", err)
	}
	s.logDir, s.cfg.LogDir = d, d.Path()
	return nil
}

// specDir is where the monitor keeps spawn requests, below stateDir.
func specDir(stateDir string) string {
	if stateDir == "" {
		return ""
	}
	return filepath.Join(stateDir, "workers")
}

// checkCPULimit refuses a CPU limit above the host's cores: it cannot
// bind, and is most often "50" meant as 50 % (a bare number is cores).
func checkCPULimit(v string, cores int) error {
	c, err := limits.ParseCPU("cpu_limit", v)
	if err != nil || c.Percent() <= float64(cores)*100 {
		return nil // a bad limit is the monitor's to refuse, by name
	}
	return api.Errorf(api.ErrInvalid, "invalid cpu_limit %q: %g cores, and this host has %d (a bare number is cores: \"50%%\" or \"0.5\" is half a core)", v, c.Percent()/100, cores)
}
