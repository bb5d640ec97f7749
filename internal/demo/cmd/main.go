// Command demo is the README's main job, run by `go tool mage demo` after
// it has built the binaries: a queen, a hive and three test workers on this
// machine, a live view, and a stop that checks nothing is left behind.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rbee-dev/rbee/internal/demo"
)

func main() {
	binDir := flag.String("bin-dir", "bin", "directory holding queen-rbee, rbee-hive and testworker")
	logDir := flag.String("log-dir", filepath.Join("bin", "demo-logs"), "directory for the daemons' and workers' logs")
	seconds := flag.Int("seconds", 0, "stop after this many seconds (0: run until Ctrl-C)")
	flag.Parse()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			os.Exit(2)
		}
		return a
	}
	cfg := demo.Config{BinDir: abs(*binDir), LogDir: abs(*logDir), Duration: time.Duration(*seconds) * time.Second, Out: os.Stdout}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := demo.Run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if left := demo.Leftovers(filepath.Join(cfg.BinDir, "testworker")); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "demo: things were left behind: %s\n", strings.Join(left, "; "))
		os.Exit(1)
	}
	fmt.Println("everything stopped; no worker process or cgroup left behind")
}
