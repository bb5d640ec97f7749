// Command rbee-loadgen is a fleet of simulated hives for a real queen:
// N hives of M workers join, then report at 1 Hz for a while, their
// heartbeats spread over each second as unsynchronised hives send them
// (captured in shape from a real hive: the static fields first, then
// numbers only, gzipped). It reports what the queen applied, and, given
// the queen's pid on this host, the queen's CPU and memory meanwhile,
// read from /proc as from outside.
//
//	queen-rbee --listen 127.0.0.1:7833 --state-dir /tmp/q &
//	go run ./harness/loadgen/rbee-loadgen --queen http://127.0.0.1:7833 \
//	    --token-file /tmp/q/token --pid $(pgrep -n queen-rbee)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rbee-dev/rbee/harness"
	"github.com/rbee-dev/rbee/harness/loadgen"
	"github.com/rbee-dev/rbee/internal/api"
	"github.com/rbee-dev/rbee/internal/cli"
)

// report is what a run prints.
type report struct {
	Hives             int     `json:"hives"`
	Workers           int     `json:"workers"` // in all
	Seconds           int     `json:"seconds"`
	Sent              uint64  `json:"sent"`
	Applied           uint64  `json:"applied"`
	Refused           int64   `json:"refused"`
	LastRefusal       string  `json:"last_refusal,omitempty"`
	PostP50MS         float64 `json:"post_p50_ms"`
	PostP99MS         float64 `json:"post_p99_ms"`
	QueenCores        float64 `json:"queen_cores,omitempty"`
	QueenRSSMiB       float64 `json:"queen_rss_mib,omitempty"`
	QueenWorkersHeld  int     `json:"queen_workers_held"`
	HeartbeatsRefused uint64  `json:"queen_heartbeats_rejected"`
}

func main() {
	// cli.Flags, as the daemons: --help on stdout, errors in one line (a
	// misspelt flag with the one meant), and a flag set of its own, not
	// the command line's, where the harness registers test flags.
	fs := cli.NewFlags("rbee-loadgen", "rbee-loadgen [flags]",
		"Simulates a fleet of hives against a queen and reports what it applied and what it cost.")
	queen := fs.String("queen", "", "http://127.0.0.1:7833", "the queen's URL")
	tokenFile := fs.String("token-file", "", "", "file holding the queen's operator token (or set RBEE_TOKEN)")
	hives := fs.Int("hives", "", 1000, "hives to simulate")
	workers := fs.Int("workers", "", 100, "workers per hive")
	gpus := fs.Int("gpus", "", 8, "GPUs per hive")
	secs := fs.Int("seconds", "", 10, "seconds of steady heartbeats after the join")
	pid := fs.Int("pid", "", 0, "the queen's pid on this host, to measure its CPU and memory (0: not measured)")
	prefix := fs.String("prefix", "", "load", "hive ids are <prefix>-0000 on")
	err := fs.Parse(os.Args[1:])
	if err == nil && fs.NArg() > 0 { // flags after it would be taken as arguments, silently
		err = cli.Usagef("unexpected argument %q: rbee-loadgen takes flags only", fs.Arg(0))
	}
	switch {
	case errors.Is(err, flag.ErrHelp): // printed, on stdout
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "rbee-loadgen:", err)
		os.Exit(2)
	}
	if err := run(*queen, *tokenFile, *hives, *workers, *gpus, *secs, *pid, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "rbee-loadgen:", err)
		os.Exit(1)
	}
}

func run(queen, tokenFile string, hives, workers, gpus, secs, pid int, prefix string) error {
	token := os.Getenv("RBEE_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return fmt.Errorf("no token: --token-file or RBEE_TOKEN (the queen's operator token, which may post for any hive)")
	}
	if hives < 1 || workers < 0 || secs < 1 {
		return fmt.Errorf("--hives and --seconds must be at least 1, --workers at least 0")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "encoding %d rounds of %d hives × %d workers…\n", secs+1, hives, workers)
	rounds, err := loadgen.Rounds(loadgen.Fleet(prefix, hives, workers, gpus), secs+1)
	if err != nil {
		return err
	}
	d := &loadgen.Driver{URL: strings.TrimRight(queen, "/"), Token: token}
	info := func() (api.QueenInfo, error) {
		var qi api.QueenInfo
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/v1/info", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return qi, fmt.Errorf("queen: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return qi, fmt.Errorf("queen /v1/info: %s", resp.Status)
		}
		return qi, json.NewDecoder(resp.Body).Decode(&qi)
	}
	if _, err := info(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d hives joining…\n", hives)
	d.Round(ctx, rounds[0], time.Second)
	before, err := info()
	if err != nil {
		return err
	}
	var m *harness.Meter
	if pid > 0 {
		if m, err = harness.NewMeter(pid); err != nil {
			return err
		}
	}
	for i, r := range rounds[1:] {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "\rsecond %d of %d", i+1, secs)
		d.Round(ctx, r, time.Second)
	}
	fmt.Fprintln(os.Stderr)
	rep := report{Hives: hives, Workers: hives * workers, Seconds: secs, Sent: uint64(secs * hives),
		PostP50MS: ms(d.Latency(0.5)), PostP99MS: ms(d.Latency(0.99))}
	if m != nil {
		cores, rss, err := m.Read()
		if err != nil {
			return err
		}
		rep.QueenCores, rep.QueenRSSMiB = cores, float64(rss)/(1<<20)
	}
	after, err := info()
	if err != nil {
		return err
	}
	rep.Applied = after.Heartbeats - before.Heartbeats
	rep.QueenWorkersHeld = after.Workers
	rep.HeartbeatsRefused = after.Rejected - before.Rejected
	rep.Refused, rep.LastRefusal = d.Refused()
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(b))
	if rep.Applied != rep.Sent {
		return fmt.Errorf("the queen applied %d of %d heartbeats", rep.Applied, rep.Sent)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
