package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/queen"
	"github.com/rbee-dev/rbee/internal/registry"
	"github.com/rbee-dev/rbee/internal/stream"
	"github.com/rbee-dev/rbee/internal/version"
)

func daemon(ctx context.Context, out io.Writer, args []string) error {
	fs := cli.NewFlags("queen-rbee", "queen-rbee [flags]",
		"Runs the queen: hives post heartbeats to it; it keeps the registry, marks a hive stale\n"+
			"after 3 missed intervals and removes it after --hive-ttl, answers queries and\n"+
			"streams changes at /v1/heartbeats/stream.\n\n"+
			"Every request but /healthz and the dashboard's page needs a token. Without --token-file\n"+
			"or RBEE_TOKEN the queen creates an operator token (token) and a read-only one\n"+
			"(read-token, for the dashboard and Prometheus) in --state-dir on first start; the\n"+
			"client commands find them there. `queen-rbee dashboard` prints the dashboard's URL.\n\n"+
			"GET / is the live dashboard, GET /metrics the Prometheus metrics (read-only token).")
	listen := fs.String("listen", "RBEE_LISTEN", api.QueenAddr, "address to serve on; port 0 picks a free port")
	ttl := fs.Duration("hive-ttl", "RBEE_HIVE_TTL", registry.DefaultHiveTTL, "remove a silent hive and its workers after this long")
	tokenFile := fs.String("token-file", "RBEE_TOKEN_FILE", "", "file holding the operator token (or set RBEE_TOKEN); mode 0600")
	readTokenFile := fs.String("read-token-file", "RBEE_READ_TOKEN_FILE", "", "file holding a read-only token (GET and the stream: dashboards, Prometheus)")
	hiveTokens := fs.String("hive-tokens", "RBEE_HIVE_TOKENS", "", "file of \"hive-id token\" lines: each token may post heartbeats for its own hive only")
	stateDir := fs.String("state-dir", "RBEE_STATE_DIR", auth.DefaultStateDir(), "where the generated operator token is kept")
	insecure := fs.Bool("insecure-no-auth", "RBEE_INSECURE_NO_AUTH", false, "serve without any token (throwaway setups only)")
	tlsCert := fs.String("tls-cert", "RBEE_TLS_CERT", "", "PEM certificate: serve HTTPS (with --tls-key)")
	tlsKey := fs.String("tls-key", "RBEE_TLS_KEY", "", "PEM private key of --tls-cert")
	maxHives := fs.Int("max-hives", "RBEE_MAX_HIVES", registry.DefaultMaxHives, "most hives the registry holds; more are refused with 429")
	maxClients := fs.Int("max-stream-clients", "RBEE_MAX_STREAM_CLIENTS", queen.DefaultMaxStreamClients, "most stream clients at once; more are refused with 503")
	saturated := fs.Float("saturated-gpu-pct", "RBEE_SATURATED_GPU_PCT", 90, "a worker whose busiest GPU's SM use reaches this takes no more requests (schedule places a new one)")
	resTTL := fs.Duration("reservation-ttl", "RBEE_RESERVATION_TTL", 30*time.Second, "how long a placement answer holds its VRAM unless the hive reports a new worker on it first")
	allowed := fs.List("allowed-host", "RBEE_ALLOWED_HOSTS", "a name the queen may be reached by besides IP addresses, localhost and its hostname")
	if err := fs.Parse(args); err != nil {
		return err // flag.ErrHelp, or a usage error
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (subcommands: hives, workers, schedule, watch)", fs.Arg(0))
	}
	if *maxHives < 1 || *maxClients < 1 {
		return cli.Usagef("--max-hives and --max-stream-clients must be at least 1")
	}
	if !(*saturated > 0 && *saturated <= 100) {
		return cli.Usagef("--saturated-gpu-pct %v: want a percentage above 0, at most 100", *saturated)
	}
	if *resTTL <= 0 {
		return cli.Usagef("--reservation-ttl %v: want a positive duration", *resTTL)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	capProcs(log)
	tokens, err := cli.DaemonTokens(log, cli.TokenFlags{File: *tokenFile, ReadFile: *readTokenFile, StateDir: *stateDir, Insecure: *insecure, ReadInStateDir: true})
	if err != nil {
		return err
	}
	if *hiveTokens != "" {
		if tokens.Hives, err = auth.LoadHiveTokens(*hiveTokens); err != nil {
			return err
		}
		log.Info("hive tokens loaded", "file", *hiveTokens, "hives", len(tokens.Hives))
	}
	q, err := queen.New(queen.Config{
		Listen: *listen, HiveTTL: *ttl, Tokens: tokens, Insecure: *insecure, AllowedHosts: *allowed,
		TLSCert: *tlsCert, TLSKey: *tlsKey, MaxHives: *maxHives, Stream: stream.Config{MaxClients: *maxClients},
		SaturatedGPUPct: *saturated, ReservationTTL: *resTTL,
		Version: version.String(), Logger: log,
	})
	if err != nil {
		return err
	}
	return q.Run(ctx, nil)
}

// maxProcs is the queen's default GOMAXPROCS. Its work at 100,000 workers
// and a thousand viewers is under a core, and every idle P costs: the
// runtime's idle threads spin looking for work at every request, and its
// collector spreads over them. With one P per core on a 16-core GPU host
// the 100,000-worker fleet took 1.96 cores where two cores took 0.6. Four
// leave room for bursts (a thousand dashboards connecting at once).
const maxProcs = 4

// capProcs holds the queen to maxProcs Ps unless GOMAXPROCS says
// otherwise: an operator's setting is theirs.
func capProcs(log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if n := runtime.GOMAXPROCS(0); n > maxProcs {
		runtime.GOMAXPROCS(maxProcs)
		log.Info("GOMAXPROCS set to "+strconv.Itoa(maxProcs)+" (set GOMAXPROCS to choose)", "cpus", n)
	}
}
