// Command testworker is the stand-in inference worker for rbee's tests and
// demo: it burns a set share of CPU, holds a set amount of memory, writes a
// set byte rate to disk with fsync, and takes the model flags real workers
// take, so telemetry can be checked against load the test itself caused.
//
//	testworker --model qwen2.5-0.5b --cpu 50 --mem 200Mi --io-write 4Mi
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rbee-dev/rbee/internal/limits"
)

type config struct {
	cpu        float64
	mem        int64
	ioWrite    int64
	ioDir      string
	children   int
	exitAfter  time.Duration
	exitCode   int
	ignoreTerm bool
	readyFile  string
	hostile    bool
	forks      int
	// health endpoint: GET /health answers 503 until healthyAfter, then
	// 200, and 500 while failFile exists.
	healthAddr   string
	healthyAfter time.Duration
	failFile     string
	say          string
	printBytes   int64
	reportFile   string
	tick         time.Duration
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("testworker", flag.ContinueOnError)
	var c config
	var mem, childMem, ioWrite, printBytes string
	fs.Float64Var(&c.cpu, "cpu", 0, "percent of one core to burn (150 = one and a half cores)")
	fs.StringVar(&mem, "mem", "", "memory to allocate and hold, e.g. 200Mi")
	fs.StringVar(&ioWrite, "io-write", "", "bytes per second to write and fsync, e.g. 4Mi")
	fs.StringVar(&c.ioDir, "io-dir", os.TempDir(), "directory for the I/O file (not tmpfs: it counts no block I/O)")
	fs.IntVar(&c.children, "children", 0, "child processes to start with the same load")
	fs.StringVar(&childMem, "child-mem", "", "with --children: memory each child holds instead of --mem (a server whose model lives in a child)")
	fs.DurationVar(&c.exitAfter, "exit-after", 0, "exit on its own after this long (0: run until signalled)")
	fs.IntVar(&c.exitCode, "exit-code", 0, "exit code when --exit-after fires")
	fs.BoolVar(&c.ignoreTerm, "ignore-term", false, "ignore SIGTERM (to test SIGKILL escalation)")
	fs.StringVar(&c.readyFile, "ready-file", "", "create this file once signals are handled and the load runs")
	fs.BoolVar(&c.hostile, "hostile", false, "try to raise its limits, leave its cgroup and signal pid 1, printing each result")
	fs.IntVar(&c.forks, "forks", 0, "with --hostile: start this many children (to hit the pids limit)")
	// Flags real workers take; the hive reads the model from the command line.
	fs.StringVar(&c.healthAddr, "health-addr", "", "serve GET /health on this address (host:port)")
	fs.DurationVar(&c.healthyAfter, "healthy-after", 0, "with --health-addr: answer 503 until this long after start (a model loading)")
	fs.StringVar(&c.failFile, "fail-file", "", "with --health-addr: answer 500 while this file exists")
	fs.StringVar(&c.say, "say", "", "print this line on stdout at start")
	fs.StringVar(&c.reportFile, "report-file", "", "with --print-bytes: also write the rate report to this file")
	fs.DurationVar(&c.tick, "tick", 0, "print a numbered line of 1000 bytes on stdout this often")
	fs.StringVar(&printBytes, "print-bytes", "", "write this much output (lines of text) to stdout as fast as it can, then report the rate on stderr, e.g. 1Gi")
	fs.String("model", "", "model name (only shown in the command line)")
	fs.String("m", "", "model name, short form")
	fs.String("served-model-name", "", "served model name")
	fs.String("port", "", "port (unused)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if c.mem, err = limits.ParseMemory("--mem", mem); err != nil {
		return err
	}
	if c.ioWrite, err = limits.ParseMemory("--io-write", ioWrite); err != nil {
		return err
	}
	if c.printBytes, err = limits.ParseMemory("--print-bytes", printBytes); err != nil {
		return err
	}
	if c.say != "" {
		fmt.Println(c.say)
	}
	if c.printBytes > 0 {
		report := printFast(c.printBytes)
		if c.reportFile != "" {
			if err := os.WriteFile(c.reportFile, []byte(report), 0o644); err != nil {
				return fmt.Errorf("report file: %w", err)
			}
		}
	}

	sigs := []os.Signal{syscall.SIGINT}
	if !c.ignoreTerm {
		sigs = append(sigs, syscall.SIGTERM)
	} else {
		signal.Ignore(syscall.SIGTERM)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	if c.exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.exitAfter)
		defer cancel()
	}

	childArgs := append(slices.Clone(args), "--children=0")
	if childMem != "" {
		childArgs = append(childArgs, "--mem="+childMem, "--child-mem=")
	}
	children, err := startChildren(childArgs, c.children)
	if err != nil {
		return err
	}
	if c.hostile {
		children = append(children, hostile(c.forks)...)
	}
	if c.healthAddr != "" {
		if err := serveHealth(ctx, c.healthAddr, time.Now().Add(c.healthyAfter), c.failFile); err != nil {
			return err
		}
	}
	if c.tick > 0 {
		go func() {
			pad := strings.Repeat(".", 980)
			for n := 1; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(c.tick):
				}
				fmt.Printf("tick %08d %s\n", n, pad)
			}
		}()
	}
	held := hold(c.mem)
	var wg sync.WaitGroup
	if c.cpu > 0 {
		burn(ctx, &wg, c.cpu)
	}
	errc := make(chan error, 1)
	if c.ioWrite > 0 {
		wg.Go(func() { errc <- write(ctx, c.ioDir, c.ioWrite) })
	}
	if c.readyFile != "" {
		if err := os.WriteFile(c.readyFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("ready file: %w", err)
		}
	}
	<-ctx.Done()
	wg.Wait()
	for _, ch := range children {
		_ = ch.Process.Signal(syscall.SIGTERM)
		_ = ch.Wait()
	}
	_ = held[len(held)-1] // keep the memory reachable until the end
	select {
	case err := <-errc:
		if err != nil {
			return err
		}
	default:
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		os.Exit(c.exitCode)
	}
	return nil
}

// startChildren starts n copies of itself with args (the parent's flags,
// with no children of their own), like a server whose work runs in child
// processes.
func startChildren(args []string, n int) ([]*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var out []*exec.Cmd
	for range n {
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start child: %w", err)
		}
		out = append(out, cmd)
	}
	return out, nil
}

// hold allocates n bytes and touches every page so they are resident.
func hold(n int64) []byte {
	b := make([]byte, max(n, 1))
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

// burn keeps pct percent of one core busy, spread over as many goroutines
// as whole cores are asked for, each alternating busy and idle in 10 ms
// slices.
func burn(ctx context.Context, wg *sync.WaitGroup, pct float64) {
	n := int(math.Ceil(pct / 100))
	share := pct / 100 / float64(n)
	const slice = 10 * time.Millisecond
	busy := time.Duration(share * float64(slice))
	for range n {
		wg.Go(func() {
			x := 1.0
			for ctx.Err() == nil {
				start := time.Now()
				for time.Since(start) < busy {
					for range 1000 {
						x = x*1.0000001 + 1e-9
					}
				}
				if idle := slice - time.Since(start); idle > 0 {
					time.Sleep(idle)
				}
			}
			_ = x
		})
	}
}

// write writes rate bytes per second in ten chunks a second, each followed
// by fsync, into one file it rewrites from the start every 64 MiB.
func write(ctx context.Context, dir string, rate int64) error {
	path := filepath.Join(dir, "testworker-io-"+strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("io: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	const ticks = 10
	chunk := make([]byte, rate/ticks)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	var off int64
	t := time.NewTicker(time.Second / ticks)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if off+int64(len(chunk)) > 64<<20 {
			off = 0
		}
		if _, err := f.WriteAt(chunk, off); err != nil {
			return fmt.Errorf("io: %w", err)
		}
		off += int64(len(chunk))
		if err := f.Sync(); err != nil {
			return fmt.Errorf("io: %w", err)
		}
	}
}

// serveHealth answers GET /health: 503 while loading, 500 while failFile
// exists, else 200.
func serveHealth(ctx context.Context, addr string, healthyAt time.Time, failFile string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case time.Now().Before(healthyAt):
			http.Error(w, "loading", http.StatusServiceUnavailable)
		case failFile != "" && fileExists(failFile):
			http.Error(w, "failing", http.StatusInternalServerError)
		default:
			w.Write([]byte("ok\n"))
		}
	})}
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// printFast writes n bytes of lines to stdout in 64 KiB writes, and
// reports how fast on stderr (and returns the report).
func printFast(n int64) string {
	line := []byte("testworker output line, padded to look like a server's log line ..................................\n")
	chunk := make([]byte, 0, 64<<10)
	for len(chunk)+len(line) <= cap(chunk) {
		chunk = append(chunk, line...)
	}
	start := time.Now()
	var done int64
	for done < n {
		w := chunk[:min(int64(len(chunk)), n-done)]
		k, err := os.Stdout.Write(w)
		done += int64(k)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testworker: write:", err)
			break
		}
	}
	took := time.Since(start)
	report := fmt.Sprintf("testworker: wrote %d bytes in %v (%.0f MiB/s)\n", done, took.Round(time.Millisecond), float64(done)/took.Seconds()/(1<<20))
	fmt.Fprint(os.Stderr, report)
	return report
}
