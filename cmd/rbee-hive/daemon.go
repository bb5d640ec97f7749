package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/hive"
	"github.com/rbee-dev/rbee/internal/ids"
	"github.com/rbee-dev/rbee/internal/launch"
	"github.com/rbee-dev/rbee/internal/limits"
	"github.com/rbee-dev/rbee/internal/monitor"
	"github.com/rbee-dev/rbee/internal/version"
)

func daemon(ctx context.Context, out io.Writer, args []string) error {
	// The default id is the hostname made valid; a host without a name
	// ("(none)" in a minimal VM) has none, and the hive says so at start.
	host, _ := os.Hostname()
	defID, noID := ids.HiveIDFromHostname(host)
	fs := cli.NewFlags("rbee-hive", "rbee-hive [flags]",
		"Runs the hive daemon: spawns workers into cgroups under --cgroup-parent, collects their\n"+
			"telemetry every --interval, serves the worker API on --listen and pushes heartbeats\n"+
			"to --queen. Workers keep running across hive restarts and are re-adopted.\n\n"+
			"Workers run as --worker-user (nobody by default when the hive is root), with no\n"+
			"capabilities, no_new_privs and a pids limit. Every request but /healthz needs the\n"+
			"operator token (or a read-only token for GET); without --token-file or RBEE_TOKEN the\n"+
			"hive creates one (token) and a read-only one (read-token) in --state-dir on first start.\n\n"+
			"GET /metrics serves Prometheus metrics of its workers, host and GPUs (read-only token).")
	listen := fs.String("listen", "RBEE_LISTEN", api.HiveAddr, "address of the worker API; port 0 picks a free port")
	queens := fs.List("queen", "RBEE_QUEEN", "queen-rbee URL for heartbeats; several queens each get every heartbeat (default http://127.0.0.1:7833; \"\" sends none)")
	queenTokenFile := fs.String("queen-token-file", "RBEE_QUEEN_TOKEN_FILE", "", "file holding this hive's token for the queen (from its --hive-tokens); default: the operator token")
	queenCA := fs.String("queen-ca", "RBEE_QUEEN_CA", "", "PEM file of a private CA that signed the queen's certificate")
	noTLS := fs.Bool("insecure-no-tls", "RBEE_INSECURE_NO_TLS", false, "allow sending the token to a non-loopback queen over plain HTTP")
	hiveID := fs.String("hive-id", "RBEE_HIVE_ID", defID, "this hive's id in the registry (default: the hostname, its characters other than A-Z a-z 0-9 . _ - made -)")
	hiveURL := fs.String("hive-url", "RBEE_HIVE_URL", "", "URL the queen and schedulers can reach this hive at (default: from --listen)")
	interval := fs.Duration("interval", "RBEE_INTERVAL", hive.DefaultInterval, "collection and heartbeat interval")
	parent := fs.String("cgroup-parent", "RBEE_CGROUP_PARENT", "", "parent cgroup of workers, absolute from the cgroup root (or, on cgroup v1, relative to the hive's own);\ndefault: on cgroup v2 a delegated systemd scope (rbee.slice/rbee-workers.scope) where systemd runs, else /rbee.slice\nbelow the root; on v1 rbee.slice below the hive's own cgroup")
	gpuMode := fs.String("gpu", "RBEE_GPU", gpu.ModeAuto, "GPU backend: auto (NVML, else nvidia-smi, else none), nvml, nvidia-smi or none")
	smiPath := fs.String("nvidia-smi", "RBEE_NVIDIA_SMI", "", "nvidia-smi binary (default: from PATH)")
	gpuTimeout := fs.Duration("gpu-timeout", "RBEE_GPU_TIMEOUT", gpu.DefaultTimeout, "deadline of one GPU query; a hung nvidia-smi is killed after it")
	gpuInPass := fs.Bool("gpu-sample-in-pass", "RBEE_GPU_SAMPLE_IN_PASS", false, "query the GPU inside every collection pass and wait for it, so worker events wait for the query too\n(the default samples the GPU on its own clock; kept to compare against)")
	binDir := fs.String("worker-bin-dir", "RBEE_WORKER_BIN_DIR", "", "spawn only binaries beneath this directory, reached without links (required beyond loopback)")
	workerUser := fs.String("worker-user", "RBEE_WORKER_USER", "", "user workers run as: NAME, UID or UID:GID (default: nobody when the hive is root, else the hive's user; root only when said)")
	pidsMax := fs.Int("worker-pids-max", "RBEE_WORKER_PIDS_MAX", 4096, "most processes and threads a worker may have (its cgroup's pids.max)")
	tokenFile := fs.String("token-file", "RBEE_TOKEN_FILE", "", "file holding the operator token (or set RBEE_TOKEN); mode 0600")
	readTokenFile := fs.String("read-token-file", "RBEE_READ_TOKEN_FILE", "", "file holding a read-only token (GET only: dashboards, Prometheus)")
	stateDir := fs.String("state-dir", "RBEE_STATE_DIR", auth.DefaultStateDir(), "where the generated tokens and the running workers' spawn requests (for a restarted hive) are kept")
	insecure := fs.Bool("insecure-no-auth", "RBEE_INSECURE_NO_AUTH", false, "serve without any token (throwaway setups only)")
	allowed := fs.List("allowed-host", "RBEE_ALLOWED_HOSTS", "a name the hive may be reached by besides IP addresses, localhost, its hostname and --hive-url's host")
	tlsCert := fs.String("tls-cert", "RBEE_TLS_CERT", "", "PEM certificate: serve HTTPS (with --tls-key)")
	tlsKey := fs.String("tls-key", "RBEE_TLS_KEY", "", "PEM private key of --tls-cert")
	stopOnExit := fs.Bool("stop-workers-on-exit", "RBEE_STOP_WORKERS_ON_EXIT", false, "stop every worker when the hive exits (default: leave them for the next hive)")
	logDir := fs.String("worker-log-dir", "RBEE_WORKER_LOG_DIR", "", "directory for each worker's stdout and stderr (<id>.log, rotated; the run before a restart in <id>.previous.log);\ndefault: <state-dir>/logs; \"\" discards the output")
	logMax := fs.String("worker-log-max-size", "RBEE_WORKER_LOG_MAX_SIZE", "64Mi", "size at which a worker's log rotates (bytes, or with K/M/G/T/Ki/Mi/Gi/Ti)")
	logFiles := fs.Int("worker-log-files", "RBEE_WORKER_LOG_FILES", 2, "log files kept per worker run, the current one included (1 to 10)")
	retention := fs.Duration("exited-retention", "RBEE_EXITED_RETENTION", hive.DefaultExitedRetention, fmt.Sprintf("how long an exited worker stays listed, here and on the queen, with its exit and last output,\nuntil removed (rbee-hive rm, prune); at most %d are kept", hive.MaxExitedKept))
	grace := fs.Duration("stop-grace", "RBEE_STOP_GRACE", monitor.DefaultStopGrace, "time between SIGTERM and SIGKILL when stopping a worker")
	if err := fs.Parse(args); err != nil {
		return err // flag.ErrHelp, or a usage error
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (rbee-hive help lists the commands)", fs.Arg(0))
	}
	if *hiveID == "" && noID != nil {
		return cli.Usagef("no hive id: %v; name this hive with --hive-id (or RBEE_HIVE_ID), as the queen will list it", noID)
	}
	if *pidsMax < 0 {
		return cli.Usagef("--worker-pids-max %d: want 0 (no limit) or more", *pidsMax)
	}
	if *parent != "" {
		if err := cgroups.CheckParent(*parent); err != nil {
			return cli.Usagef("--cgroup-parent: %v", err)
		}
		if !strings.HasPrefix(*parent, "/") && cgroups.Detect(cgroups.DefaultRoot) == cgroups.ModeV2 {
			return cli.Usagef("--cgroup-parent %s: on cgroup v2 give an absolute path (e.g. /rbee.slice): a relative one is below the hive's own cgroup, which cannot delegate controllers while it holds the hive", *parent)
		}
	}
	logMaxBytes, err := limits.ParseMemory("--worker-log-max-size", *logMax)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	if logMaxBytes < 64<<10 {
		return cli.Usagef("--worker-log-max-size %s: want at least 64Ki", *logMax)
	}
	if *logFiles < 1 || *logFiles > 10 {
		return cli.Usagef("--worker-log-files %d: want 1 to 10", *logFiles)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	user, err := workerCredential(*workerUser)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	tokens, err := cli.DaemonTokens(log, cli.TokenFlags{File: *tokenFile, ReadFile: *readTokenFile, StateDir: *stateDir, Insecure: *insecure, ReadInStateDir: true})
	if err != nil {
		return err
	}
	cfg := hive.Config{
		HiveID:        *hiveID,
		Listen:        *listen,
		HiveURL:       *hiveURL,
		Interval:      *interval,
		QueenURLs:     queenURLs(fs, *queens),
		QueenCA:       *queenCA,
		InsecureNoTLS: *noTLS,
		Tokens:        tokens,
		Insecure:      *insecure,
		AllowedHosts:  *allowed,
		TLSCert:       *tlsCert,
		TLSKey:        *tlsKey,
		BinDir:        *binDir,
		Workers: monitor.Config{
			User:       user,
			PidsMax:    int64(*pidsMax),
			StopGrace:  *grace,
			LogMaxSize: logMaxBytes,
			LogFiles:   *logFiles,
		},
		StopWorkersOnExit: *stopOnExit,
		ExitedRetention:   *retention,
		LogDir:            *logDir,
		DiscardLogs:       *logDir == "" && fs.Given("worker-log-dir"),
		StateDir:          *stateDir,
		Version:           version.String(),
		Logger:            log,
	}
	if *queenTokenFile != "" {
		if cfg.QueenToken, err = auth.ReadTokenFile(*queenTokenFile); err != nil {
			return fmt.Errorf("--queen-token-file: %w", err)
		}
	}
	// Everything that needs nothing from the system is checked before
	// the cgroup parent is created, so a refused start leaves nothing.
	if err := cfg.Check(); err != nil {
		return err
	}
	backend, why, err := gpu.Open(*gpuMode, *smiPath)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	log.Info("gpu backend", "backend", backend.Name(), "why", why)
	p := monitor.DetectPlatform(cgroups.Config{Parent: *parent, Keeper: launch.StartKeeper})
	// Before anything else touches the parent: it may be another hive's.
	release, err := hive.Claim(p.Cgroups, cfg.StateDir)
	if err != nil {
		_ = backend.Close()
		return err
	}
	defer release()
	cfg.Workers.Platform = p
	cfg.GPU, cfg.GPUWhy = gpu.NewSampler(backend, *gpuTimeout), why
	cfg.GPUSampleInPass = *gpuInPass
	h, err := hive.New(cfg)
	if err != nil {
		if p.Cgroups != nil {
			// Only what no worker uses: an earlier hive's workers live on.
			_ = p.Cgroups.Release(context.Background())
		}
		_ = cfg.GPU.Close()
		return err
	}
	return h.Run(ctx, nil)
}

// workerCredential resolves --worker-user. Unset, workers run as nobody
// when the hive is root and as the hive's own user otherwise (a hive that
// is not root cannot switch users).
func workerCredential(spec string) (*launch.Credential, error) {
	root := os.Geteuid() == 0
	if spec == "" {
		if !root {
			return nil, nil
		}
		spec = "nobody"
	}
	c, err := launch.LookupUser(spec)
	if err != nil {
		return nil, fmt.Errorf("--worker-user: %w", err)
	}
	if !root && (c.UID != uint32(os.Getuid()) || c.GID != uint32(os.Getgid())) {
		return nil, fmt.Errorf("--worker-user %s: the hive is not root and can only run workers as itself (uid %d)", spec, os.Getuid())
	}
	return c, nil
}

// queenURLs is where heartbeats go: the --queen flags or RBEE_QUEEN's
// comma list, else the local default; an empty one means none.
func queenURLs(fs *cli.Flags, given []string) []string {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "queen" })
	if _, env := os.LookupEnv("RBEE_QUEEN"); !set && !env {
		return []string{"http://" + api.QueenAddr}
	}
	var out []string
	for _, q := range given {
		for _, u := range strings.Split(q, ",") {
			if u = strings.TrimSpace(u); u != "" && !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}
