// Command rbee-hive runs on each GPU host: it spawns inference workers into
// cgroups with CPU and memory limits, watches them, and collects their
// telemetry.
//
// This build runs the collection loop over the workers it finds in its
// cgroup subtree and logs one line per worker per pass; the HTTP API,
// heartbeats and client subcommands arrive with the daemon issue.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rbee-dev/rbee/internal/cgroups"
	"github.com/rbee-dev/rbee/internal/gpu"
	"github.com/rbee-dev/rbee/internal/monitor"
)

func main() {
	fs := flag.NewFlagSet("rbee-hive", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rbee-hive [flags]\n\nWatches the workers in the hive's cgroup subtree and logs their telemetry.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	interval := fs.Duration("interval", envDuration("RBEE_INTERVAL", time.Second), "collection interval (env RBEE_INTERVAL)")
	parent := fs.String("cgroup-parent", envString("RBEE_CGROUP_PARENT", cgroups.DefaultParent), "parent cgroup of workers: relative to the hive's own cgroup, or absolute (env RBEE_CGROUP_PARENT)")
	gpuMode := fs.String("gpu", envString("RBEE_GPU", gpu.ModeAuto), "GPU backend: auto (NVML, else nvidia-smi, else none), nvml, nvidia-smi or none (env RBEE_GPU)")
	smiPath := fs.String("nvidia-smi", envString("RBEE_NVIDIA_SMI", ""), "nvidia-smi binary for the nvidia-smi backend (default: from PATH) (env RBEE_NVIDIA_SMI)")
	gpuTimeout := fs.Duration("gpu-timeout", envDuration("RBEE_GPU_TIMEOUT", gpu.DefaultTimeout), "deadline of one GPU query; a hung nvidia-smi is killed after it (env RBEE_GPU_TIMEOUT)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *interval <= 0 || *gpuTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "rbee-hive: --interval and --gpu-timeout must be positive")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	p := monitor.DetectPlatform(cgroups.Config{Parent: *parent})
	if p.Cgroups == nil {
		log.Warn("limits not enforced: workers run as plain processes", "reason", p.NoCgroupsReason)
	}
	backend, why, err := gpu.Open(*gpuMode, *smiPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rbee-hive:", err)
		os.Exit(2)
	}
	log.Info("gpu backend", "backend", backend.Name(), "why", why)
	sampler := gpu.NewSampler(backend, *gpuTimeout)
	defer sampler.Close()
	m := monitor.New(monitor.Config{Platform: p, Logger: log, GPU: sampler.Source()})
	defer m.Close()
	if ids, err := m.Adopt(ctx); err != nil {
		log.Error("adopt workers", "err", err)
	} else {
		log.Info("watching", "cgroup_parent", m.Info().CgroupParent, "adopted", ids)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down; workers keep running")
			return
		case <-t.C:
		}
		for _, w := range m.Collect(ctx) {
			log.Info("worker", "id", w.ID, "state", w.State, "pid", w.PID, "cpu_pct", w.CPUPct, "mem_bytes", w.MemBytes,
				"vram_bytes", w.VRAMBytes, "gpu_util_pct", w.GPUUtilPct, "errors", w.Errors)
		}
	}
}

func envString(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "rbee-hive: ignoring %s=%q: not a duration\n", key, v)
	}
	return def
}
