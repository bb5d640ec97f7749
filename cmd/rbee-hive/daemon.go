package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/rbee-dev/rbee/internal/auth"
	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/cli"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/hive"
	"github.com/rbee-dev/rbee/internal/monitor"
	"github.com/rbee-dev/rbee/internal/version"
)

func daemon(ctx context.Context, args []string) error {
	host, _ := os.Hostname()
	fs := cli.NewFlags("rbee-hive", "rbee-hive [flags]",
		"Runs the hive daemon: spawns workers into cgroups under --cgroup-parent, collects their\n"+
			"telemetry every --interval, serves the worker API on --listen and pushes heartbeats\n"+
			"to --queen. Workers keep running across hive restarts and are re-adopted.")
	listen := fs.String("listen", "RBEE_LISTEN", "127.0.0.1:7835", "address of the worker API; port 0 picks a free port")
	queen := fs.String("queen", "RBEE_QUEEN", "http://127.0.0.1:7833", "queen-rbee URL for heartbeats (\"\" sends none)")
	hiveID := fs.String("hive-id", "RBEE_HIVE_ID", host, "this hive's id in the registry")
	hiveURL := fs.String("hive-url", "RBEE_HIVE_URL", "", "URL the queen and schedulers can reach this hive at (default: from --listen)")
	interval := fs.Duration("interval", "RBEE_INTERVAL", time.Second, "collection and heartbeat interval")
	parent := fs.String("cgroup-parent", "RBEE_CGROUP_PARENT", cgroups.DefaultParent, "parent cgroup of workers: relative to the hive's own cgroup, or absolute from the root")
	gpuMode := fs.String("gpu", "RBEE_GPU", gpu.ModeAuto, "GPU backend: auto (NVML, else nvidia-smi, else none), nvml, nvidia-smi or none")
	smiPath := fs.String("nvidia-smi", "RBEE_NVIDIA_SMI", "", "nvidia-smi binary (default: from PATH)")
	gpuTimeout := fs.Duration("gpu-timeout", "RBEE_GPU_TIMEOUT", gpu.DefaultTimeout, "deadline of one GPU query; a hung nvidia-smi is killed after it")
	binDir := fs.String("worker-bin-dir", "RBEE_WORKER_BIN_DIR", "", "spawn only binaries under this directory (required beyond loopback)")
	tokenFile := fs.String("token-file", "RBEE_TOKEN_FILE", "", "file holding the shared token (or set RBEE_TOKEN)")
	insecure := fs.Bool("insecure-no-auth", "RBEE_INSECURE_NO_AUTH", false, "allow a non-loopback --listen without a token")
	stopOnExit := fs.Bool("stop-workers-on-exit", "RBEE_STOP_WORKERS_ON_EXIT", false, "stop every worker when the hive exits (default: leave them for the next hive)")
	logDir := fs.String("worker-log-dir", "RBEE_WORKER_LOG_DIR", "", "directory for each worker's stdout and stderr (<id>.log); default: discarded")
	grace := fs.Duration("stop-grace", "RBEE_STOP_GRACE", 10*time.Second, "time between SIGTERM and SIGKILL when stopping a worker")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.Usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (subcommands: spawn, list, show, stop, info)", fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	token, err := auth.LoadToken(*tokenFile)
	if err != nil {
		return err
	}
	backend, why, err := gpu.Open(*gpuMode, *smiPath)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	log.Info("gpu backend", "backend", backend.Name(), "why", why)
	p := monitor.DetectPlatform(cgroups.Config{Parent: *parent})
	h, err := hive.New(hive.Config{
		HiveID: *hiveID, Listen: *listen, QueenURL: *queen, HiveURL: *hiveURL, Interval: *interval,
		Token: token, Insecure: *insecure, BinDir: *binDir, StopWorkersOnExit: *stopOnExit,
		Version: version.String(), Logger: log, Platform: p, StopGrace: *grace, LogDir: *logDir,
		GPU: gpu.NewSampler(backend, *gpuTimeout), GPUWhy: why, Proc: p.Proc,
	})
	if err != nil {
		return err
	}
	return h.Run(ctx, nil)
}
