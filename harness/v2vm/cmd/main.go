//go:build linux

// Command v2vm runs rbee's cgroup v2 lane (go tool mage test:v2 builds and
// runs it from the repository's root): the cgroup tests and the hive's
// restart under a real cgroup v2 kernel in qemu, and the hive's systemd
// unit under systemd. See package harness/v2vm.
//
// Env: RBEE_V2_STEPS (comma-separated steps, default all: a,b,c,systemd,
// systemd-bpo), RBEE_V2_PKGS (comma-separated suites of steps a and b,
// e.g. internal/monitor), RBEE_V2_RUN (a -test.run pattern for them),
// RBEE_V2_TIMEOUT (a duration replacing each step's timeout),
// RBEE_V2_CACHE (default $XDG_CACHE_HOME/rbee/v2vm), RBEE_V2_MIRROR (the
// Debian mirror for debootstrap, default apt's), RBEE_V2_ACCEL (qemu's
// -accel, default tcg), RBEE_ARTIFACTS (default artifacts/; console logs
// go to its v2vm/).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rbee-dev/rbee/harness/v2vm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: v2vm (configured by RBEE_V2_* variables; see go doc ./harness/v2vm/cmd)")
		for _, s := range v2vm.Steps {
			fmt.Fprintf(os.Stderr, "  step %-12s %s\n", s.Name, s.Doc)
		}
		os.Exit(2)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("run v2vm from the repository's root: %w", err)
	}
	steps, err := v2vm.SelectSteps(os.Getenv("RBEE_V2_STEPS"))
	if err != nil {
		return fmt.Errorf("RBEE_V2_STEPS: %w", err)
	}
	o := v2vm.Options{ModuleRoot: root, Steps: steps, Run: os.Getenv("RBEE_V2_RUN"),
		WorkDir: filepath.Join(root, "bin", "v2vm"), Mirror: os.Getenv("RBEE_V2_MIRROR"), Accel: os.Getenv("RBEE_V2_ACCEL"), Out: os.Stdout}
	if pkgs := os.Getenv("RBEE_V2_PKGS"); pkgs != "" {
		for _, p := range strings.Split(pkgs, ",") {
			i := slices.IndexFunc(v2vm.Suites, func(s v2vm.Suite) bool { return s.Pkg == strings.Trim(p, "./ ") })
			if i < 0 {
				return fmt.Errorf("RBEE_V2_PKGS: no suite %q", p)
			}
			o.Suites = append(o.Suites, v2vm.Suites[i])
		}
	}
	if t := os.Getenv("RBEE_V2_TIMEOUT"); t != "" {
		if o.Timeout, err = time.ParseDuration(t); err != nil || o.Timeout <= 0 {
			return fmt.Errorf("RBEE_V2_TIMEOUT=%q: want a duration such as 30m", t)
		}
	}
	if o.CacheDir = os.Getenv("RBEE_V2_CACHE"); o.CacheDir == "" {
		if o.CacheDir, err = v2vm.DefaultCacheDir(); err != nil {
			return err
		}
	}
	if o.Artifacts = os.Getenv("RBEE_ARTIFACTS"); o.Artifacts == "" {
		o.Artifacts = filepath.Join(root, "artifacts")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	_, err = v2vm.Run(ctx, o)
	return err
}
